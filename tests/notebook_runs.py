"""Every chapter, executed by papermill at the small parameters of notebook_params.json.

Kept out of the default test collection (the file name does not start with test_) so that
`make unit` stays fast; `make notebooks` runs it, then nbval re-executes its outputs.
The glued numbers of each chapter are checked for presence and sanity.
"""

import json
import math
from pathlib import Path

import papermill as pm
import pytest

from closedloop.report import glued

ROOT = Path(__file__).resolve().parents[1]
PARAMS = json.loads((ROOT / "tests" / "notebook_params.json").read_text())
OUT = ROOT / "_build" / "ci"


def test_every_chapter_has_ci_parameters():
    chapters = {p.name for p in (ROOT / "book").glob("*.ipynb")}
    assert chapters == set(PARAMS), "tests/notebook_params.json must list every chapter"


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_chapter_runs(name):
    OUT.mkdir(parents=True, exist_ok=True)
    out = OUT / name
    params = dict(PARAMS[name])
    if name == "report.ipynb":  # absolute: nbval re-executes it from another folder
        params["executed"] = str(OUT)
    pm.execute_notebook(str(ROOT / "book" / name), str(out), parameters=params,
                        cwd=str(ROOT / "book"), kernel_name="python3", progress_bar=False)
    values = glued(out)
    assert values, "the chapter glued nothing"
    if name == "ch2_stages.ipynb":
        for key in ("stage1_end_epoch", "stabilization_epoch", "final_loss",
                    "final_spectral_radius", "stab_values", "rho_median", "tab_paper_rho",
                    "tab_book_window_rho", "tab_book_earlier_rho", "window_loss_shift"):
            assert key in values
        # the window moves every loss by the x_0 term, less the (small) x_T term
        assert float(values["window_loss_shift"]) <= float(values["x0_term"]) + 1e-12
        final_loss = float(values["final_loss"])
        assert math.isfinite(final_loss) and final_loss > 0
        # a real run: the final loss is far below the loss of the untrained network
        assert final_loss < 1e3
    if name == "ch1_open_closed.ipynb":
        keys = ("closed_final_test_loss", "open_final_test_loss", "open_peak_test_loss",
                "open_peak_epoch", "open_peak_ratio", "closed_plateau_epochs",
                "final_gain_closed", "final_gain_open", "ablation_peak_ratios",
                "seeds_with_excursion", "ablation_table")
        assert set(keys) <= set(values)
        for key in ("closed_final_test_loss", "open_final_test_loss"):
            assert math.isfinite(float(values[key])) and float(values[key]) > 0
        # both trainings improve on the untrained network's test loss
        assert float(values["closed_final_test_loss"]) < float(values["closed_start_test_loss"])
        # epoch 0 makes no update: the final network is recorded as epoch epochs + 1
        assert 0 <= int(values["open_peak_epoch"]) <= PARAMS[name]["epochs"] + 1
        for gain in ("final_gain_closed", "final_gain_open"):
            k = values[gain]
            assert len(k) == 2 and all(math.isfinite(v) for v in k)
        plateau = values["closed_plateau_epochs"]
        assert plateau is None or 0 <= plateau[0] <= plateau[1] <= PARAMS[name]["epochs"] + 1
        ratios = values["ablation_peak_ratios"]
        assert len(ratios) == 4 and all(math.isnan(r) or r >= 1 for r in ratios.values())
        assert 0 <= int(values["seeds_with_excursion"]) <= PARAMS[name]["n_seeds"]
    if name == "ch4_tracking.ipynb":
        for key in ("acquisition_epochs", "final_test_loss_closed", "final_test_loss_open",
                    "eig_freq_match"):
            assert key in values
        acquired = values["acquisition_epochs"]
        assert len(acquired) == 4 and all(e is None or 0 <= e <= PARAMS[name]["epochs"]
                                          for e in acquired)
        for key in ("final_test_loss_closed", "final_test_loss_open", "eig_freq_match"):
            assert math.isfinite(float(values[key])) and float(values[key]) >= 0
        # a real run: even 30 epochs take the closed loop below its runaway start
        assert float(values["final_test_loss_closed"]) < float(values["initial_test_loss"])
    if name == "ch3_tradeoff.ipynb":
        keys = ("paper_model_gap_pct", "frozen_metric_gap_pct", "compressed_max_rel_error",
                "stage3_final_eig_gap", "alpha_values", "T_values", "beta_values",
                "beta_gaps_pct")
        assert set(keys) <= set(values)
        assert values["T_values"] == PARAMS[name]["T_values"]
        assert values["beta_values"] == PARAMS[name]["betas"]
        assert len(values["beta_gaps_pct"]) == len(PARAMS[name]["betas"])
        assert len(values["alpha_values"]) >= 5
        # the exact reduction is exact; the four-number models start on the network
        assert float(values["compressed_max_rel_error"]) < 1e-9
        for key in ("paper_model_gap_pct", "frozen_metric_gap_pct"):
            assert 0 <= float(values[key]) < 100
        assert 0 <= float(values["stage3_final_eig_gap"]) < 1
    if name == "ch6_plants.ipynb":
        keys = ("identity_max_error", "tri_rho_min", "tri_reach_rho", "unst_stab_over_predicted",
                "osc_unstable_epochs", "stage1_gap_max", "atlas_n", "atlas_agree",
                "lin_unstable_epochs", "lin_explained_min")
        assert set(keys) <= set(values)
        # P_eff is exact, and no first-order controller stabilizes the triple integrator
        assert float(values["identity_max_error"]) < 1e-8
        assert float(values["tri_reach_rho"]) >= 1 - 1e-6 and float(values["tri_rho_min"]) > 1
        p = PARAMS[name]
        assert int(values["atlas_n"]) == len(p["atlas_values"]) * p["atlas_seeds"]
        assert 0 <= float(values["atlas_agree"]) <= 1
        assert 0 <= int(values["osc_unstable_epochs"]) <= p["epochs"] + 1


def test_chapter_3_runs_when_its_network_never_stabilizes(tmp_path):
    """So few epochs that no stage boundary is reached: the chapter falls back to fixed
    epochs (and says so) and every section, figures included, still runs."""
    name = "ch3_tradeoff.ipynb"
    out = tmp_path / name
    pm.execute_notebook(str(ROOT / "book" / name), str(out),
                        parameters=dict(PARAMS[name], epochs=20, T_sweep_epochs=5),
                        cwd=str(ROOT / "book"), kernel_name="python3", progress_bar=False)
    assert "no stabilization within 20 epochs" in out.read_text()


# one bad setting per chapter, and the start of the message its check cell must give
BAD = {"ch1_open_closed.ipynb": ("epochs", -1, "epochs must be >= 1, got -1"),
       "ch2_stages.ipynb": ("N", 1, "N must be >= 2, got 1"),
       "ch3_tradeoff.ipynb": ("alpha_values", [0.5, 1.5],
                              "alpha_values[1] must be <= 1.0, got 1.5"),
       "ch4_tracking.ipynb": ("dt", 2.0, "dt must be < 1.25, got 2.0"),
       "ch6_plants.ipynb": ("atlas_values", [1.5, 0.5],
                            "atlas_values must be unstable poles, |a| > 1, got [1.5, 0.5]")}


@pytest.mark.parametrize("name", sorted(BAD))
def test_a_bad_parameter_stops_the_chapter_at_its_check_cell(name, tmp_path):
    """papermill with a bad value: the cell after the parameters fails with the parameter's
    name, value and range, and no later cell (nothing that trains) runs. The output goes to
    tmp_path, not _build/ci, where nbval would re-run it."""
    key, value, message = BAD[name]
    out = tmp_path / name
    with pytest.raises(pm.PapermillExecutionError) as err:
        pm.execute_notebook(str(ROOT / "book" / name), str(out), parameters={key: value},
                            cwd=str(ROOT / "book"), kernel_name="python3", progress_bar=False)
    assert message in str(err.value) and "check_parameters" in err.value.source
    code = [c for c in json.loads(out.read_text())["cells"] if c["cell_type"] == "code"]
    failed = [i for i, c in enumerate(code)
              if any(o["output_type"] == "error" for o in c["outputs"])]
    assert failed == [2] and "check_parameters" in "".join(code[2]["source"])
    assert "injected-parameters" in code[1]["metadata"]["tags"]  # right after papermill's
    assert not any(c["execution_count"] for c in code[3:])  # nothing after it ran
