"""The reproduction report: the paper's claims next to the book's numbers, with a verdict.

Each ``Claim`` names the paper's figure, its number (in its units), where the book computes
the same quantity (a chapter and the names it glues) and a ``Rule`` that turns the book's
number into a verdict: "reproduced", "reproduced in shape" or "differs". Nothing here is
run again: ``collect`` reads the glued values of the executed chapters, ``rows`` checks that
every number is there (a missing one is an error that names the chapter and the name) and
applies the rules. Introduced in the appendix "Reproduction report".
"""

from __future__ import annotations

import ast
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .stages import AUTHORS

VERDICTS = ("reproduced", "reproduced in shape", "differs")


@dataclass(frozen=True)
class Rule:
    """How a book number becomes a verdict. ``kind``:

    - 'range': the value (the median of a list) lies in ``strict`` (lo, hi): reproduced; in
      ``loose``: in shape;
    - 'factor': within a factor ``strict`` (then ``loose``) of ``target``; for a list and a
      target of the same length, every element within that factor of its own;
    - 'above': the value is above ``strict`` (reproduced) or ``loose`` (in shape);
    - 'below': the value is below ``strict`` or ``loose``;
    - 'increasing': a list strictly increasing (reproduced); first below last (in shape);
    - 'distance': the Euclidean distance of a vector to ``target`` is within ``strict`` or
      ``loose``;
    - 'agree': two values whose relative difference |a - b| / max(|a|, |b|) is within
      ``strict`` or ``loose``;
    - 'ratio': two values whose ratio a / b is above ``strict`` (reproduced) or ``loose``;
    - 'straddle': two values a > ``target`` > b (reproduced), or a > b (in shape).
    """

    kind: str
    strict: object = None
    loose: object = None
    target: object = None

    def text(self) -> str:
        """The tolerance in words, for the report's row."""
        if self.kind not in _KINDS:
            raise ValueError(f"unknown rule kind {self.kind!r}")
        t = self.target
        t = ", ".join(f"{x:g}" for x in t) if isinstance(t, (list, tuple)) else t
        return _KINDS[self.kind][2].format(s=self.strict, l=self.loose, t=t)


def verdict(rule: Rule, value) -> str:
    """The verdict of ``rule`` on the book's ``value`` (a number, a list, or for 'agree' a
    pair). A value that is missing or not finite differs."""
    if rule.kind not in _KINDS:
        raise ValueError(f"unknown rule kind {rule.kind!r}")
    measure, passes, _ = _KINDS[rule.kind]
    try:
        m = measure(value, rule)
        return _grade(passes(m, "strict", rule), passes(m, "loose", rule))
    except (_NotANumber, TypeError, ValueError):
        return "differs"


def _max_factor(value, rule) -> float:
    """The largest factor between the value(s) and the target(s)."""
    v, t = np.asarray(value, float), np.asarray(rule.target, float)
    if v.ndim == 0 or t.ndim == 0:
        v, t = np.asarray(_scalar(value)), t
    if v.shape != t.shape or (v <= 0).any() or (t <= 0).any():
        raise _NotANumber
    return float(np.exp(np.abs(np.log(v / t))).max())


def _pair(value, rule=None):
    a, b = (_scalar(x) for x in value)
    return a, b


def _increasing(value, rule):
    v = np.asarray(value, float)
    if v.ndim != 1 or v.size < 2 or not np.isfinite(v).all():
        raise _NotANumber
    return v


def _ratio(value, rule):
    a, b = _pair(value)
    if b <= 0:
        raise _NotANumber
    return a / b


def _relative_difference(value, rule):
    a, b = _pair(value)
    return abs(a - b) / max(abs(a), abs(b))


def _bounded(compare):
    """A pass test against the rule's bound of a level: compare(measure, rule.<level>)."""
    return lambda m, level, rule: compare(m, getattr(rule, level))


_within, _above = _bounded(lambda m, b: m <= b), _bounded(lambda m, b: m > b)

# kind -> (what is measured from the value, whether it passes at a level 'strict' or
# 'loose', the rule in words): "reproduced" if it passes strict, "in shape" if loose
_KINDS = {
    "range": (lambda v, r: _scalar(v), _bounded(lambda m, b: b[0] <= m <= b[1]),
              "in [{s[0]:g}, {s[1]:g}]; in shape in [{l[0]:g}, {l[1]:g}]"),
    "factor": (_max_factor, _within, "within {s:g}x of {t}; in shape within {l:g}x"),
    "above": (lambda v, r: _scalar(v), _above, "> {s:g}; in shape > {l:g}"),
    "below": (lambda v, r: _scalar(v), _bounded(lambda m, b: m < b),
              "< {s:g}; in shape < {l:g}"),
    "distance": (lambda v, r: float(np.linalg.norm(np.asarray(v, float)
                                                   - np.asarray(r.target, float))),
                 _within, "distance to ({t}) <= {s:g}; in shape <= {l:g}"),
    "agree": (_relative_difference, _within,
              "relative difference <= {s:g}; in shape <= {l:g}"),
    "ratio": (_ratio, _above, "first / second > {s:g}; in shape > {l:g}"),
    # the two below grade by shape, not by a bound
    "increasing": (_increasing, lambda v, level, r: bool(
        np.all(np.diff(v) > 0) if level == "strict" else v[-1] > v[0]),
        "strictly increasing; in shape: last above first"),
    "straddle": (_pair, lambda m, level, r: (m[0] > r.target > m[1]) if level == "strict"
                 else m[0] > m[1], "first > {t:g} > second; in shape: first > second"),
}


@dataclass(frozen=True)
class Claim:
    """One row: ``section`` and ``figure`` of the paper, the claim in words (``what``), the
    paper's number as text in its units (``paper``), where the book has it (``chapter``,
    the glued ``keys``: one name, or two for an 'agree' rule), its ``units``, the ``rule``,
    and the chapter's section label (``anchor``) the row links to."""

    section: str
    figure: str
    what: str
    paper: str
    chapter: str
    keys: tuple
    units: str
    rule: Rule
    anchor: str
    spread: str | None = None  # a glued seed spread to show beside the number
    divide_by: str | None = None  # a glued number the value is divided by (e.g. epochs run)


class MissingNumber(KeyError):
    """A claim's number is not among its chapter's glued values."""


def collect(folder) -> dict:
    """{chapter name: {glue name: value}} from the executed notebooks in ``folder`` (values
    parsed from their text form: numbers, lists, tuples, dicts and strings)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"no folder of executed chapters at {folder}")
    return {path.stem: glued(path) for path in sorted(folder.glob("*.ipynb"))}


def glued(path) -> dict:
    """{glue name: value} of one executed notebook, each value parsed by ``parse`` from its
    text form (a glued Markdown reads as its placeholder text; figures are left out)."""
    return {name: parse(texts["text/plain"]) for name, texts in glued_texts(path).items()
            if "text/plain" in texts}


def glued_texts(path) -> dict:
    """{glue name: {"text/plain": ..., "text/markdown": ...}}: the text forms, as stored, of
    every glue of one executed notebook but figures."""
    out = {}
    for cell in json.loads(Path(path).read_text())["cells"]:
        for o in cell.get("outputs", []):
            name = o.get("metadata", {}).get("scrapbook", {}).get("name")
            data = o.get("data", {})
            if not name or any("image/" in k for k in data):
                continue
            # glue(..., display=False) stores its mime types under a papermill prefix
            out[name] = {mime: v if isinstance(v, str) else "".join(v)
                         for k, v in data.items() for mime in TEXT_MIMES if k.endswith(mime)}
    return out


TEXT_MIMES = ("text/plain", "text/markdown")


def parse(text: str):
    """A glued value from its repr: numbers (numpy scalars included), lists, tuples, dicts,
    strings; NaN and inf as floats. Anything else stays the text."""
    t = re.sub(r"np\.(?:float|int|uint|bool_?)\w*\(([^()]*)\)", r"\1", text.strip())
    t = re.sub(r"array\((\[.*\])(?:, dtype=\w+)?\)", r"\1", t, flags=re.S)
    t = re.sub(r"\bnan\b", "float('nan')", t)
    t = re.sub(r"(?<![\w'])inf\b", "float('inf')", t)
    try:
        return ast.literal_eval(t)
    except (ValueError, SyntaxError):
        try:
            return _eval_floats(t)
        except Exception:  # noqa: BLE001 - not a value we can read: keep the text
            return text


def rows(claims, glued: dict) -> list[dict]:
    """Every claim with the book's value and verdict: [{claim, value, verdict, spread}].
    Raises MissingNumber naming the chapter and the glue name when one is absent."""
    out = []
    for c in claims:
        if c.chapter not in glued:
            raise MissingNumber(f"{c.chapter}: the chapter's executed notebook is missing "
                                f"(claim {c.what!r})")
        values = []
        for key in c.keys:
            if key not in glued[c.chapter]:
                raise MissingNumber(f"{c.chapter}: no glued value {key!r} (claim {c.what!r})")
            values.append(glued[c.chapter][key])
        value = values[0] if len(values) == 1 else tuple(values)
        if c.divide_by is not None:
            if c.divide_by not in glued[c.chapter]:
                raise MissingNumber(f"{c.chapter}: no glued value {c.divide_by!r} (claim "
                                    f"{c.what!r})")
            value = _divide(value, glued[c.chapter][c.divide_by])
        spread = None
        if c.spread is not None:
            if c.spread not in glued[c.chapter]:
                raise MissingNumber(f"{c.chapter}: no glued value {c.spread!r} (the spread of "
                                    f"{c.what!r})")
            spread = glued[c.chapter][c.spread]
        out.append({"claim": c, "value": value, "verdict": verdict(c.rule, value),
                    "spread": spread})
    return out


def html_table(table: list[dict], beyond: bool = False) -> str:
    """The report as one HTML table, each claim linking to its chapter's section. ``beyond``:
    the table of ``BEYOND`` (the first column is the chapter's setting, the third the
    theory's prediction, not the paper's number)."""
    first, third = ("setting", "theory predicts") if beyond else ("paper", "paper's number")
    head = (f"<table class='report'><thead><tr><th>{first}</th><th>claim</th><th>{third}"
            "</th><th>book's number</th><th>seed spread</th><th>rule</th><th>verdict</th>"
            "</tr></thead><tbody>")
    body = []
    for r in table:
        c = r["claim"]
        link = f"{c.chapter}.html#{c.anchor.lower()}"  # Sphinx lowercases label ids
        body.append(
            f"<tr><td>{'' if beyond else 's.'}{_esc(c.section)}, {_esc(c.figure)}</td>"
            f"<td><a href='{link}'>{_esc(c.what)}</a></td><td>{_esc(c.paper)}</td>"
            f"<td>{_esc(fmt(r['value']))} {_esc(c.units)}</td>"
            f"<td>{_esc(fmt(r['spread'])) if r['spread'] is not None else ''}</td>"
            f"<td>{_esc(c.rule.text())}</td>"
            f"<td class='verdict {r['verdict'].replace(' ', '-')}'>{r['verdict']}</td></tr>")
    return head + "".join(body) + "</tbody></table>"


def fmt(value) -> str:
    """A number or list of numbers, 3 significant digits."""
    if isinstance(value, (list, tuple)):
        return "(" + ", ".join(fmt(v) for v in value) + ")"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {fmt(v)}" for k, v in value.items())
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return f"{value:.3g}"
    return str(value)


def counts(table: list[dict]) -> dict:
    """How many rows have each verdict."""
    return {v: sum(r["verdict"] == v for r in table) for v in VERDICTS}


def summary(table: list[dict], prefix: str = "") -> dict:
    """The report page's numbers: ``n_claims`` and ``n_<verdict>`` (spaces as underscores),
    e.g. ``n_reproduced_in_shape``, each name after ``prefix`` (the second table's
    ``beyond_``)."""
    return {f"{prefix}n_claims": len(table),
            **{f"{prefix}n_{v.replace(' ', '_')}": n for v, n in counts(table).items()}}


class _NotANumber(Exception):
    pass


def _scalar(value) -> float:
    if isinstance(value, (list, tuple, np.ndarray)):
        a = np.asarray(value, float)
        if a.size == 0:
            raise _NotANumber
        value = float(np.median(a))
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise _NotANumber
    if not math.isfinite(value):
        raise _NotANumber
    return float(value)


def _divide(value, by):
    """value / by, elementwise for lists (None stays None)."""
    if isinstance(value, (list, tuple)):
        return [None if v is None else v / by for v in value]
    return value / by


def _grade(strict: bool, loose: bool) -> str:
    return VERDICTS[0] if strict else VERDICTS[1] if loose else VERDICTS[2]


def _eval_floats(t):
    """literal_eval with float('nan') / float('inf') allowed."""
    tree = ast.parse(t, mode="eval")

    def conv(node):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "float" \
                and len(node.args) == 1 and isinstance(node.args[0], ast.Constant):
            return float(node.args[0].value)
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, (ast.List, ast.Tuple)):
            items = [conv(e) for e in node.elts]
            return items if isinstance(node, ast.List) else tuple(items)
        if isinstance(node, ast.Dict):
            return {conv(k): conv(v) for k, v in zip(node.keys, node.values)}
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -conv(node.operand)
        raise ValueError("not a literal")

    return conv(tree.body)


def _esc(s) -> str:
    import html

    return html.escape(str(s))


# -- the claims of the paper (shared/paper.md sections 5-7) -----------------------------------
def _listed(values) -> str:
    """The authors' numbers as the paper's column shows them."""
    return ", ".join(f"{v:g}" for v in values)


CLAIMS = [
    Claim("5", "Fig. 3, the figure's run", "stage 1 ends early (a network with s_zm(0) > 0)",
          "near epoch 8 (the book: seed 3, s_zm(0) > 0 too)", "ch2_stages",
          ("stage1_end_epoch",), "epochs", Rule("factor", 1.5, 3.0, 8.0), "ch2-stages"),
    Claim("5", "Fig. 3, the figure's run", "its stabilization epoch is a typical network's",
          "near epoch 129 (an unseeded run)", "ch2_stages", ("figure_pct",),
          "% of the book's 100 networks stabilized by then",
          Rule("range", (5, 95), (1, 99)), "ch2-stages"),
    Claim("5", "authors' code, seeds 0-3", "stabilization epochs at the same draws",
          _listed(AUTHORS["stabilization"]), "ch2_stages", ("stab_values",), "epochs",
          Rule("distance", 0.5, 10.0, AUTHORS["stabilization"]), "ch2-stages"),
    Claim("5", "authors' code, seeds 0-3", "training loss at the last update, same draws",
          _listed(AUTHORS["last_update_loss"]), "ch2_stages", ("last_losses",),
          "(authors' loss window)", Rule("factor", 1.001, 1.05, AUTHORS["last_update_loss"]),
          "ch2-stages"),
    Claim("5", "authors' code, seeds 0-3", "rho(P) at the last update, same draws",
          _listed(AUTHORS["last_update_rho"]), "ch2_stages", ("last_rhos",), "",
          Rule("factor", 1.0001, 1.01, AUTHORS["last_update_rho"]), "ch2-stages"),
    Claim("5", "Fig. 3d", "the geometric-sum loss follows the exact stage-1 loss",
          "the same exponential dependence on s_zm", "ch2_stages", ("ratio_spread",),
          "max / min of exact / estimate, |s_zm| >= 0.05 (the loss spans ~16 decades)",
          Rule("below", 100.0, 1e4),
          "ch2-stage1-loss"),
    Claim("5", "Fig. 3e", "s_zm turns negative from every small start",
          "all paths reach s_zm < 0, s_zm(0) in [-0.2, 0.2]", "ch2_stages",
          ("sweep_negative_epoch",), "epoch from which every run keeps s_zm < 0",
          Rule("range", (0, 1000), (0, 1000)), "ch2-stage1"),
    Claim("5", "Fig. 4", "alpha -> 0 pushes lambda_1 out, alpha -> 1 pulls it in",
          "qualitative", "ch3_tradeoff", ("alpha0_final_modulus", "alpha1_final_modulus"),
          "|lambda_1| at the end, alpha = 0 and 1", Rule("straddle", target=1.0),
          "ch3-alpha"),
    Claim("5", "Fig. 4c", "stage 2 zig-zags", "the eigenvalue path zig-zags in stage 2",
          "ch3_tradeoff", ("zigzag_alternating_fraction",),
          "% of steps of |lambda_1| that reverse the last one (66.7: i.i.d. noise)",
          Rule("above", 66.7, 50.0), "ch3-zigzag"),
    Claim("5", "s.5, stage 2", "the perturbative lambda_3 and Vieta's |lambda_1|^2",
          "lambda_3 ~ s_vu + s_vm s_zu / (s_vu^2 - 2 s_vu - s_zm + 1)", "ch3_tradeoff",
          ("lambda3_max_error",), "largest error against the exact root over stage 2",
          Rule("below", 0.01, 0.05), "ch3-stage2"),
    Claim("5", "Fig. 4d", "the alpha-model returns inside the circle only in a narrow band",
          "alpha between about 0.48 and 0.55 (T' = 10)", "ch3_tradeoff", ("band_edges",),
          "(lower, upper edge), bisected to 1e-3", Rule("distance", 0.05, 0.15, (0.48, 0.55)),
          "ch3-band"),
    Claim("5", "Fig. 4e", "the shortest horizon's copy never stabilizes",
          "|lambda_1| 1.013 -> 1.19 over 108 epochs", "ch3_tradeoff",
          ("T_myopic_modulus_at_authors",), "|lambda_1| of the longest such T at epoch 108",
          Rule("factor", 1.05, 1.2, 1.19), "ch3-T"),
    Claim("5", "Fig. 4", "a short horizon T acts like a small alpha", "qualitative",
          "ch3_tradeoff", ("T_short_peak_modulus", "T_long_peak_modulus"),
          "max |lambda_1|, shortest and longest T", Rule("ratio", 1.0, 0.99), "ch3-T"),
    Claim("5", "Fig. 5; authors' code, seeds 0-3",
          "stage 3: the paper's reduced model follows the full network",
          "curves coincide (authors' code, 4 seeds: median gaps 1.6-6.6%)", "ch3_tradeoff",
          ("seed_gaps_pct",), "% median gap over stage 3, seeds 0-3 (the rule reads their "
          "median)", Rule("range", (1.6, 6.6), (0.5, 20.0)), "ch3-stage3"),
    Claim("5", "Fig. 5", "stage 3 with a control cost beta > 0", "agree for every beta "
          "(authors' code: 0.8-1.5%)", "ch3_tradeoff", ("beta_gaps_pct",),
          "% median gap for beta = 0, 0.5, 2, 5 (the rule reads their median)",
          Rule("below", 2.0, 10.0), "ch3-stage3"),
    Claim("6", "Fig. 1c", "the closed-loop test loss has a plateau",
          "epochs 12-110 (from 1.4e3 to 408)", "ch1_open_closed", ("closed_plateau_epochs",),
          "(first, last epoch)", Rule("factor", 1.5, 3.0, (12, 110)), "ch1-closed"),
    Claim("6", "Fig. 2b", "the open-loop path crosses the unstable oscillatory region, the "
          "closed-loop path does not", "student: inside; closed loop: along its edge",
          "ch1_open_closed", ("open_oscillatory_depth", "closed_oscillatory_depth"),
          "max |lambda| - 1 of A + Bk there (student, closed loop)", Rule("ratio", 3.0, 1.0),
          "ch1-gains"),
    Claim("6", "their tanh notebook", "eig(W) alone does not show the stages",
          "W's spectrum has no event where eig(P) crosses the unit circle", "ch1_open_closed",
          ("rho_W_max",), "largest rho(W) over both trainings (rho(P) crosses 1)",
          Rule("below", 1.0, 1.0), "ch1-final"),
    Claim("6", "Fig. 1", "the open-loop student's test loss peaks far above its final value",
          "~9e4x (authors' code: 5.6e5 / 6.15)", "ch1_open_closed", ("open_peak_ratio",),
          "x (peak / final)", Rule("above", 1e4, 100.0), "ch1-excursion"),
    Claim("6", "Fig. 1", "epoch of the student's peak", "~220-300 (authors' code: 211-213)",
          "ch1_open_closed", ("open_peak_epoch",), "epoch", Rule("range", (200, 300), (50, 600)),
          "ch1-excursion"),
    Claim("6", "Fig. 1", "both networks end at the same test loss", "within a few percent",
          "ch1_open_closed", ("closed_final_test_loss", "open_final_test_loss"),
          "(closed, open)", Rule("agree", 0.05, 0.10), "ch1-excursion"),
    Claim("6", "Fig. 2", "final gains of the closed-loop network", "(-0.36, -1.0)",
          "ch1_open_closed", ("final_gain_closed",), "(k1, k2)",
          Rule("distance", 0.05, 0.2, (-0.36, -1.0)), "ch1-gains"),
    Claim("6", "Fig. 2", "final gains of the open-loop student", "(-0.36, -1.0)",
          "ch1_open_closed", ("final_gain_open",), "(k1, k2)",
          Rule("distance", 0.05, 0.2, (-0.36, -1.0)), "ch1-gains"),
    Claim("7", "Fig. 6", "frequencies acquired in order, low first", "0.1 < 0.2 < 0.3 < 0.4 Hz",
          "ch4_tracking", ("acquisition_epochs",), "epochs", Rule("increasing"),
          "ch4-acquisition"),
    Claim("7", "Fig. 6", "eig(W) pairs line up with the target frequencies",
          "|Im| 0.58, 1.25, 1.82, 2.54 vs 0.63, 1.26, 1.88, 2.51 rad/s", "ch4_tracking",
          ("top_im_at_learned",), "rad/s (largest |Im| when each is learned)",
          Rule("distance", 0.2, 0.6, (0.63, 1.26, 1.88, 2.51)), "ch4-eig"),
    Claim("7", "Fig. 6", "acquisition epochs",
          "~230, 1200, 2600, 4500 (hand-picked in the authors' figure)", "ch4_tracking",
          ("acquisition_epochs",), "epochs", Rule("factor", 1.5, 3.0, (230, 1200, 2600, 4500)),
          "ch4-people"),
    Claim("7", "Fig. 6", "the trained network's eig(W) pairs sit at the target frequencies",
          "0.63, 1.26, 1.88, 2.51 rad/s", "ch4_tracking", ("eig_freq_match",),
          "rad/s (largest mismatch)", Rule("below", 0.1, 0.3), "ch4-eig"),
    Claim("7", "Fig. 6e", "acquiring a frequency disturbs one already learned",
          "0.1 Hz probe 0.551 -> 0.580 (+5.3%) while 0.2 Hz is acquired", "ch4_tracking",
          ("rise_case",), "relative rise of the 0.1 Hz probe loss (seeds in the spread)",
          Rule("factor", 2.0, 5.0, 0.053), "ch4-interference", spread="rise_case_clean_runs"),
    # away from Adam's loss spikes (tracking.loss_spikes), which lift every probe loss at
    # once, acquisition or not, and made this ratio several times larger (Chapter 4)
    Claim("7", "Fig. 6e", "learned probe losses rise at acquisitions, not in between",
          "a brief rise at each acquisition", "ch4_tracking",
          ("clean_rise_median", "clean_quiet_p90"),
          "(median rise at acquisitions, 90th percentile in quiet windows; away from loss "
          "spikes)", Rule("ratio", 2.0, 1.0), "ch4-interference"),
    Claim("7", "Fig. 6f", "acquisition times rise with frequency as in human tracking",
          "human data [2.5, 4, 6, 9.5] / 20", "ch4_tracking", ("acquired_normalized",),
          "acquisition epoch / epochs run",
          Rule("distance", 0.15, 0.45, (0.125, 0.2, 0.3, 0.475)), "ch4-people"),
    Claim("7", "Fig. 6", "the open-loop twin's test loss rises, then falls",
          "~5.6 -> ~13 near epoch 100, then falls", "ch4_tracking",
          ("open_peak_test_loss", "final_test_loss_open"), "(peak, final)",
          Rule("ratio", 2.0, 1.05), "ch4-twin"),
]
