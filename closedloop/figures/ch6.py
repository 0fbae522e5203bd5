"""Figures of Chapter 6, section "The linear open-loop student": a rank-one linear teacher
trained closed loop and its student trained open loop (``open_student.train_students``)."""

from __future__ import annotations

from .. import open_student
from ..plotting import LOOP_COLORS, figure


def linear_student(students, seed: int):
    """The student's exact closed-loop loss (left) and rho(P_eff) (middle) along training
    beside its teacher's, grey where the student's loop is unstable; right, p = s_zu s_vm over
    the p_c its own s_zm and s_vu need for the environment's pair to lie inside the unit
    circle, to first order (``open_student.required_product``; undefined while s_zm >= 0;
    a guide while p is small, not at the final networks)."""
    k = students.index(seed)
    h, t = students.student, students.teacher
    fig, ((a1, a2, a3),) = figure(3, height=2.9)
    for ax, name, student, teacher in (
            (a1, "closed-loop loss", h.closed_loss[:, k], t.expected_loss[:, k]),
            (a2, r"$\rho(P_\mathrm{eff})$", h.spectral_radius[:, k], t.spectral_radius[:, k])):
        ax.plot(t.epoch + 1, teacher, color=LOOP_COLORS["closed"], label="teacher (closed loop)")
        ax.plot(h.epoch + 1, student, color=LOOP_COLORS["open"], label="student (open loop)")
        for s in open_student.unstable_spells(h.eig_epoch, h.eig_P[:, k]):
            ax.axvspan(s.first + 1, s.last + 2, color="0.88", lw=0, zorder=0)
        ax.set(xscale="log", xlabel="epoch + 1", ylabel=name)
    a1.set(yscale="log", title="exact expected loss")
    a2.axhline(1, color="0.4", ls="--", lw=0.8)
    a2.set(title=r"grey: student's $\rho \geq 1$")
    a1.legend(loc="lower left")
    for hist, name in ((t, "closed"), (h, "open")):
        q = hist.overlaps[:, k]
        a3.plot(hist.epoch + 1, q[:, 1] * q[:, 2] / open_student.required_product(q),
                color=LOOP_COLORS[name])
    a3.axhline(1, color="0.4", ls="--", lw=0.8)
    a3.set(xscale="log", yscale="log", xlabel="epoch + 1", ylabel=r"$p \,/\, p_c$",
           title=r"$p \,/\, p_c$, first order in $p$")
    return fig
