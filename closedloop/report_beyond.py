"""The reproduction report's second table (issue 28): Chapter 6's numbers judged against what
the theory of that chapter predicts (the loop P_eff, its polynomial q, the clip speed of SGD),
not against the paper, which makes no such claim. Rows are ``report.Claim`` with the
prediction in the ``paper`` field, the chapter as ``section`` and the setting as ``figure``;
``report.rows`` and ``report.html_table(..., beyond=True)`` turn them into the table.
Introduced in the appendix "Reproduction report", section "Beyond the paper".
"""

from __future__ import annotations

from .report import Claim, Rule

_C6 = dict(chapter="ch6_plants", section="Ch. 6")
BEYOND = [
    Claim(figure="triple integrator", what="no rank-one network stabilizes it (no stage 3)",
          paper="rho(P) >= 1 always (mu^2 of q(1 + mu) is 0 for every network)",
          keys=("tri_rho_min",), units="smallest rho(P) over training",
          rule=Rule("above", 1.0, 0.99), anchor="ch6-breaks", **_C6),
    Claim(figure="double integrator", what="no static gain stabilizes it: stage 2's memory "
          "is needed", paper="rho(A + s_zm B C) >= 1 for every s_zm", keys=("di_static_at_stab",),
          units="rho(A + s_zm B C) at stabilization", rule=Rule("above", 1.0, 0.99),
          anchor="ch6-breaks", **_C6),
    Claim(figure="unstable plant", what="static feedback suffices: it stabilizes when s_zm "
          "can, at the clip speed", paper="the clip-speed epoch (ratio 1)",
          keys=("unst_stab_over_predicted",), units="measured / predicted stabilization epoch",
          rule=Rule("range", (0.9, 1.05), (0.7, 1.3)), anchor="ch6-breaks", **_C6),
    Claim(figure="damped oscillator", what="a plant stable on its own starts in stage 3",
          paper="no record with rho(P) >= 1", keys=("osc_unstable_epochs",),
          units="records with rho(P) >= 1", rule=Rule("below", 0.5, 10.0), anchor="ch6-breaks",
          **_C6),
    Claim(figure="all four plants", what="stage 1's spectrum is eig(A + s_zm B C)",
          paper="the loop's eigenvalues while u, v are small", keys=("stage1_gap_max",),
          units="largest distance to eig(P), first 10 records", rule=Rule("below", 0.1, 0.3),
          anchor="ch6-plants", **_C6),
    Claim(figure="atlas over the unstable pole a", what="the clip-speed prediction says which "
          "runs stabilize", paper="every run as predicted", keys=("atlas_agree",),
          units="fraction of runs", rule=Rule("above", 0.95, 0.8), anchor="ch6-atlas", **_C6),
    Claim(figure="atlas over the unstable pole a", what="the stabilization epoch is the "
          "clip-speed epoch", paper="ratio 1", keys=("atlas_ratio_median",),
          units="median measured / predicted", rule=Rule("range", (0.9, 1.05), (0.7, 1.3)),
          anchor="ch6-atlas", **_C6),
    Claim(figure="linear open-loop student", what="unstable in closed loop for longer than its "
          "teacher", paper="static gain learned before its memory (q's closed forms)",
          keys=("lin_unstable_epochs", "lin_teacher_unstable_epochs"),
          units="(student, teacher) unstable records", rule=Rule("ratio", 1.2, 1.0),
          anchor="ch6-student", **_C6),
    Claim(figure="linear open-loop student", what="its unstable epochs are those q's closed "
          "forms predict", paper="p < p_c (complex pair) or K(1) > 0 (real root)",
          keys=("lin_explained_min",), units="smallest share over seeds and kinds",
          rule=Rule("above", 0.95, 0.8), anchor="ch6-student", **_C6),
]
