"""Every chapter checks its parameters cell (issue 8): the declared ranges match the cell,
the defaults and the CI values pass, bad values fail naming parameter, value and range.
(tests/notebook_runs.py runs a chapter with a bad value through papermill.)"""

import ast
import json
from pathlib import Path

import pytest

from closedloop.params import CHAPTERS, check_parameters

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "book").glob("*.ipynb"))
CI = json.loads((ROOT / "tests" / "notebook_params.json").read_text())


def parameters_cell(path):
    """(the parameters cell's values, the source of the cell after it)."""
    cells = json.loads(path.read_text())["cells"]
    i = next(i for i, c in enumerate(cells) if "parameters" in c["metadata"].get("tags", []))
    values = {}
    exec("".join(cells[i]["source"]), {}, values)  # plain assignments of literals
    return values, "".join(cells[i + 1]["source"])


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_chapter_declares_and_checks_its_parameters(path):
    assert path.stem in CHAPTERS, (f"add the parameters of {path.name} to "
                                   f"closedloop/params.py and a check cell after them")
    values, next_cell = parameters_cell(path)
    assert set(values) == set(CHAPTERS[path.stem]), "params.py and the parameters cell differ"
    calls = [n for n in ast.walk(ast.parse(next_cell)) if isinstance(n, ast.Call)
             and getattr(n.func, "id", None) == "check_parameters"]
    assert len(calls) == 1 and calls[0].args[0].value == path.stem
    check_parameters(path.stem, values)                      # the paper-scale defaults
    check_parameters(path.name, {**values, **CI[path.name]})  # the CI values


@pytest.mark.parametrize("chapter,name,value,error,message", [
    ("ch1_open_closed", "epochs", -1, ValueError, "epochs must be >= 1, got -1"),
    ("ch1_open_closed", "epochs", 3.0, TypeError, "epochs must be an integer, got 3.0"),
    ("ch1_open_closed", "lr", 0.0, ValueError, "lr must be > 0.0, got 0.0"),
    ("ch1_open_closed", "lr", float("nan"), ValueError, "lr must be finite, got nan"),
    ("ch1_open_closed", "clip", -1.0, ValueError, "clip must be > 0"),
    ("ch1_open_closed", "beta", -0.5, ValueError, "beta must be >= 0"),
    ("ch1_open_closed", "inputs", "noise", ValueError, "inputs must be one of"),
    ("ch1_open_closed", "n_test", 1, ValueError, "n_test must be >= 2, got 1"),
    ("ch1_open_closed", "x0_half_width", float("inf"), ValueError, "x0_half_width must be"),
    ("ch1_open_closed", "seed", -3, ValueError, "seed must be >= 0"),
    ("ch1_open_closed", "N", "100", TypeError, "N must be an integer, got '100'"),
    ("ch2_stages", "N", 1, ValueError, "N must be >= 2, got 1"),
    ("ch2_stages", "s_zm0_max", 1.5, ValueError, "s_zm0_max must be <= 1.0, got 1.5"),
    ("ch2_stages", "n_batches", 1, ValueError, "n_batches must be >= 2"),
    ("ch2_stages", "T", True, TypeError, "T must be an integer, got True"),
    ("ch4_tracking", "dt", 1.25, ValueError, "dt must be < 1.25, got 1.25"),
    ("ch4_tracking", "dt", 0.0, ValueError, "dt must be > 0.0"),
    ("ch4_tracking", "acq_window", 50, ValueError, "acq_window must be odd, got 50"),
    ("ch4_tracking", "acq_fraction", 0.0, ValueError, "acq_fraction must be > 0.0"),
    ("ch4_tracking", "tau", -1.0, ValueError, "tau must be > 0.0"),
    ("ch4_tracking", "n_seeds", -1, ValueError, "n_seeds must be >= 0"),
    ("ch4_tracking", "bound", "10", TypeError, "bound must be a real number"),
    ("ch4_tracking", "tau", 0.05, ValueError, "dt must be <= tau (alpha = dt/tau <= 1"),
    ("ch6_plants", "a", 0.5, ValueError, "a must be an unstable pole, |a| > 1, got a=0.5"),
    ("ch6_plants", "atlas_values", [1.5, -0.9], ValueError, "atlas_values must be unstable"),
    ("ch6_plants", "atlas_values", [2.0, 2.0], ValueError, "atlas_values must be distinct"),
    ("ch6_plants", "osc_zeta", 1.0, ValueError, "osc_zeta must be < 1.0, got 1.0"),
    ("ch6_plants", "student_seeds", [], TypeError, "student_seeds must be a non-empty list"),
    ("ch6_plants", "engine", "dask", ValueError, "engine must be one of"),
])
def test_a_bad_value_names_parameter_value_and_range(chapter, name, value, error, message):
    values, _ = parameters_cell(ROOT / "book" / f"{chapter}.ipynb")
    with pytest.raises(error) as err:
        check_parameters(chapter, {**values, name: value})
    assert str(err.value).startswith(f"{chapter}: parameter {message}")


def test_none_where_the_chapter_allows_it_and_missing_or_unknown_chapters():
    values, _ = parameters_cell(ROOT / "book" / "ch4_tracking.ipynb")
    check_parameters("ch4_tracking", {**values, "bound": None})  # no clamp
    with pytest.raises(TypeError, match="lr must be a real number, got None"):
        check_parameters("ch4_tracking", {**values, "lr": None})
    del values["lr"]
    with pytest.raises(ValueError, match="parameter lr is missing"):
        check_parameters("ch4_tracking", values)
    with pytest.raises(ValueError, match="chapter must be one of"):
        check_parameters("ch9_nothing", values)
