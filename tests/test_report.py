"""closedloop.report: verdict rules on numbers whose verdicts are known, glued values read back
from a notebook written here, a missing number refused by name, and the claim list complete
against the chapters' glue of the small-scale runs when they exist."""

import json
import math

import numpy as np
import pytest

from closedloop import report, report_beyond
from closedloop.report import Claim, Rule, verdict


@pytest.mark.parametrize("rule,value,want", [
    (Rule("range", (56, 92), (40, 110)), 70, "reproduced"),
    (Rule("range", (56, 92), (40, 110)), 100, "reproduced in shape"),
    (Rule("range", (56, 92), (40, 110)), 130, "differs"),
    (Rule("range", (56, 92), (40, 110)), [60, 100, 130], "reproduced in shape"),  # median 100
    (Rule("factor", 1.5, 3.0, 9e4), 9e4 * 1.4, "reproduced"),
    (Rule("factor", 1.5, 3.0, 9e4), 9e4 / 2.5, "reproduced in shape"),
    (Rule("factor", 1.5, 3.0, 9e4), 9e4 / 4, "differs"),
    (Rule("factor", 1.5, 3.0, 9e4), -1.0, "differs"),
    (Rule("factor", 1.5, 3.0, (230, 1200)), [287, 895], "reproduced"),  # 1.25x, 1.34x
    (Rule("factor", 1.5, 3.0, (230, 1200)), [287, 500], "reproduced in shape"),  # 2.4x
    (Rule("factor", 1.5, 3.0, (230, 1200)), [287, None], "differs"),
    (Rule("above", 1e4, 100), 2e4, "reproduced"),
    (Rule("above", 1e4, 100), 500, "reproduced in shape"),
    (Rule("above", 1e4, 100), 50, "differs"),
    (Rule("below", 0.02, 0.1), 0.05, "reproduced in shape"),
    (Rule("increasing"), [1, 5, 9, 30], "reproduced"),
    (Rule("increasing"), [1, 9, 5, 30], "reproduced in shape"),
    (Rule("increasing"), [30, 9, 5, 1], "differs"),
    (Rule("increasing"), [1, float("nan")], "differs"),
    (Rule("distance", 0.05, 0.2, (-0.36, -1.0)), (-0.33, -0.98), "reproduced"),
    (Rule("distance", 0.05, 0.2, (-0.36, -1.0)), (-0.2, -1.0), "reproduced in shape"),
    (Rule("agree", 0.05, 0.1), (6.1, 6.15), "reproduced"),
    (Rule("agree", 0.05, 0.1), (6.0, 6.6), "reproduced in shape"),
    (Rule("range", (0, 1), (0, 2)), float("nan"), "differs"),
    (Rule("range", (0, 1), (0, 2)), "abc", "differs"),
])
def test_verdicts(rule, value, want):
    assert verdict(rule, value) == want


def test_every_rule_states_its_tolerance():
    for r in (Rule("range", (1, 2), (0, 3)), Rule("factor", 2, 4, 1.0),
              Rule("factor", 2, 4, (1.0, 2.0)), Rule("above", 1, 0),
              Rule("below", 1, 2), Rule("increasing"), Rule("distance", 1, 2, (0, 0)),
              Rule("agree", 0.1, 0.2)):
        assert r.text()
    with pytest.raises(ValueError, match="unknown rule"):
        verdict(Rule("near"), 1.0)


@pytest.mark.parametrize("text,want", [
    ("0.25", 0.25), ("np.float64(0.5)", 0.5), ("[1, 2, 3]", [1, 2, 3]),
    ("(np.float64(-0.36), np.float64(-1.0))", (-0.36, -1.0)), ("nan", float("nan")),
    ("{'a': 1.0, 'b': [2, 3]}", {"a": 1.0, "b": [2, 3]}), ("'reproduced'", "reproduced"),
    ("array([1., 2.])", [1.0, 2.0]), ("[1.0, nan, inf]", [1.0, float("nan"), float("inf")]),
    ("<Figure size 700x300 with 1 Axes>", "<Figure size 700x300 with 1 Axes>")])
def test_parse_reads_glued_reprs(text, want):
    got = report.parse(text)
    if isinstance(want, float) and math.isnan(want):
        assert math.isnan(got)
    elif isinstance(want, list) and any(isinstance(v, float) and math.isnan(v) for v in want):
        assert got[0] == 1.0 and math.isnan(got[1]) and got[2] == float("inf")
    else:
        assert got == want


def _notebook(path, values):
    outputs = [{"output_type": "display_data", "metadata": {"scrapbook": {"name": k}},
                "data": {"application/papermill.record/text/plain": repr(v)}}
               for k, v in values.items()]
    nb = {"cells": [{"cell_type": "code", "source": "", "metadata": {}, "outputs": outputs,
                     "execution_count": 1}], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    path.write_text(json.dumps(nb))


def test_collect_and_rows_and_a_missing_number(tmp_path):
    _notebook(tmp_path / "ch9.ipynb",
              {"x": np.float64(0.3), "pair": (1.0, 1.02), "sp": [0.2, 0.4]})
    glued = report.collect(tmp_path)
    assert glued["ch9"]["x"] == 0.3 and glued["ch9"]["pair"] == (1.0, 1.02)
    ok = Claim("5", "Fig. 9", "x is small", "0.25", "ch9", ("x",), "", Rule("range", (0.2, 0.4),
                                                                               (0.1, 0.5)),
               "sec", spread="sp")
    pair = Claim("6", "Fig. 9", "both agree", "-", "ch9", ("pair",), "", Rule("agree", 0.05, 0.1),
                 "sec")
    table = report.rows([ok, pair], glued)
    assert [r["verdict"] for r in table] == ["reproduced", "reproduced"]
    assert report.counts(table) == {"reproduced": 2, "reproduced in shape": 0, "differs": 0}
    # the page's prose reads these names
    assert report.summary(table) == {"n_claims": 2, "n_reproduced": 2,
                                     "n_reproduced_in_shape": 0, "n_differs": 0}
    html = report.html_table(table)
    assert "ch9.html#sec" in html and html.count("<tr>") == 3
    missing = Claim("5", "Fig. 9", "y", "1", "ch9", ("y",), "", Rule("above", 1, 0), "sec")
    with pytest.raises(report.MissingNumber, match="ch9: no glued value 'y'"):
        report.rows([missing], glued)
    with pytest.raises(report.MissingNumber, match="ch8"):
        report.rows([Claim("5", "F", "z", "1", "ch8", ("z",), "", Rule("above", 1, 0), "s")],
                    glued)


def glue_names(chapter: str) -> list:
    """Patterns of the glue names a chapter's claims module can make: its string constants,
    and its f-strings with each formatted field as a wildcard (``tab_{name}_rho``)."""
    import ast
    import re
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "closedloop" / "claims" / f"{chapter[:3]}.py"
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.JoinedStr):
            out.append("".join(re.escape(v.value) if isinstance(v, ast.Constant) else r"\w+"
                               for v in node.values))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            out.append(re.escape(node.value))
    return out


def test_every_claim_links_to_a_label_and_names_glue_its_chapter_makes():
    """Static check of report.CLAIMS against the chapters' sources: the anchor is a MyST
    label of the chapter, and every glue name is one its claims module (closedloop.claims)
    can make."""
    import re
    from pathlib import Path

    book = Path(__file__).resolve().parents[1] / "book"
    for c in report.CLAIMS + report_beyond.BEYOND:
        cells = json.loads((book / f"{c.chapter}.ipynb").read_text())["cells"]
        prose = "\n".join("".join(x["source"]) for x in cells if x["cell_type"] == "markdown")
        assert re.search(rf"^\({re.escape(c.anchor)}\)=", prose, re.M), \
            f"{c.chapter} has no label ({c.anchor})= for {c.what!r}"
        names = glue_names(c.chapter)
        for key in c.keys + ((c.spread,) if c.spread else ()):
            assert any(re.fullmatch(n, key) for n in names), \
                f"claims.{c.chapter[:3]} makes no glue {key!r} ({c.what!r})"


def test_a_claim_divided_by_another_glued_number(tmp_path):
    _notebook(tmp_path / "ch9.ipynb", {"acq": [100, None, 400], "epochs_used": 1000})
    c = Claim("7", "F", "fractions", "-", "ch9", ("acq",), "", Rule("increasing"), "s",
              divide_by="epochs_used")
    (row,) = report.rows([c], report.collect(tmp_path))
    assert row["value"] == [0.1, None, 0.4] and row["verdict"] == "differs"  # None: never


@pytest.mark.parametrize("value,want", [((1.19, 0.999), "reproduced"),
                                        ((0.99, 0.98), "reproduced in shape"),
                                        ((0.9, 1.2), "differs")])
def test_straddle(value, want):
    assert verdict(Rule("straddle", target=1.0), value) == want


def test_glued_texts_keep_both_text_forms_and_leave_figures_out(tmp_path):
    rec = "application/papermill.record/"
    outputs = [{"output_type": "display_data", "metadata": {"scrapbook": {"name": n}},
                "data": data} for n, data in (
        ("words", {rec + "text/markdown": "rises *above*", rec + "text/plain": "<Markdown>"}),
        ("fig", {rec + "image/png": "iVBOR", rec + "text/plain": "<Figure>"}),
        ("x", {rec + "text/plain": ["1.", "5"]}))]
    nb = {"cells": [{"cell_type": "code", "source": "", "metadata": {}, "outputs": outputs,
                     "execution_count": 1}], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    (tmp_path / "ch9.ipynb").write_text(json.dumps(nb))
    texts = report.glued_texts(tmp_path / "ch9.ipynb")
    assert texts == {"words": {"text/markdown": "rises *above*", "text/plain": "<Markdown>"},
                     "x": {"text/plain": "1.5"}}
    assert report.glued(tmp_path / "ch9.ipynb") == {"words": "<Markdown>", "x": 1.5}


def test_the_beyond_table_names_its_columns_for_predictions():
    """Chapter 6's table: its third column is the theory's prediction, its first the
    setting (no paper section), and every row is judged by its own rule."""
    c = report_beyond.BEYOND[0]
    table = report.rows([c], {"ch6_plants": {"tri_rho_min": 1.04}})
    assert table[0]["verdict"] == "reproduced"
    html = report.html_table(table, beyond=True)
    assert "<th>theory predicts</th>" in html and "<th>setting</th>" in html
    assert f"<td>Ch. 6, {c.figure}</td>" in html and "s.Ch. 6" not in html
    assert report.rows([c], {"ch6_plants": {"tri_rho_min": 0.98}})[0]["verdict"] == "differs"
    assert report.summary(table, prefix="beyond_") == {
        "beyond_n_claims": 1, "beyond_n_reproduced": 1, "beyond_n_reproduced_in_shape": 0,
        "beyond_n_differs": 0}
    assert "<th>paper</th>" in report.html_table(table)
