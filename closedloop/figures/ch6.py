"""Figures of Chapter 6: the rank-one network on four plants (``plant_stages.train_plants``),
the atlas over the unstable plant's pole (``plant_stages.atlas_table``), and section "The
linear open-loop student": a rank-one linear teacher trained closed loop and its student
trained open loop (``open_student.train_students``)."""

from __future__ import annotations

from .. import open_student
import numpy as np

from ..plotting import LOOP_COLORS, PALETTE, complex_plane, eig_scatter, figure


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


def plant_runs(runs):
    """One column per plant ({name: plant_stages.PlantRun}): top, rho(P) along training
    (solid) and the static part rho(A + s_zm B C) of the same networks (dashed), the
    stabilization epoch marked; bottom, the exact expected loss."""
    from ..stage_theory import static_radius

    fig, axes = figure(len(runs), 2, height=4.4, sharex=True)
    for (name, run), top, bottom in zip(runs.items(), axes[0], axes[1]):
        h = run.history
        top.plot(h.eig_epoch + 1, h.spectral_radius, color=PALETTE["blue"], label=r"$\rho(P)$")
        top.plot(h.epoch + 1, static_radius(run.plant, h.overlaps[:, 0]), color=PALETTE["red"],
                 ls="--", lw=1.0, label=r"$\rho(A + s_{zm} BC)$")
        top.axhline(1, color="0.4", lw=0.8, ls=":")
        if run.stages.stabilization is not None:
            for ax in (top, bottom):
                ax.axvline(run.stages.stabilization + 1, color=PALETTE["green"], lw=1.0)
        top.set(xscale="log", title=name)
        bottom.plot(h.epoch + 1, h.expected_loss, color="k")
        bottom.set(xscale="log", yscale="log", xlabel="epoch + 1")
    axes[0, 0].set_ylabel("spectral radius")
    axes[1, 0].set_ylabel("expected loss")
    axes[0, 0].legend(loc="upper right")
    return fig


def stage1_roots(runs, n_epochs: int = 30):
    """Per plant, the eigenvalues of P over the first ``n_epochs`` records (dots, coloured by
    epoch) and the stage-1 prediction eig(A + s_zm B C) of the same networks (rings)."""
    from ..plant_theory import stage1_eigenvalues

    fig, axes = figure(len(runs), 1, height=2.6)
    for (name, run), ax in zip(runs.items(), axes[0]):
        h = run.history
        E = min(n_epochs, len(h.eig_epoch))
        eig = np.asarray(h.eig_P)[:E]
        mu = stage1_eigenvalues(np.asarray(h.overlaps)[:E, 0], run.plant)
        eig_scatter(ax, eig, h.eig_epoch[:E], s=10)
        ax.scatter(mu.real.ravel(), mu.imag.ravel(), s=28, facecolors="none",
                   edgecolors=PALETTE["red"], linewidths=0.6)
        r = max(1.15, float(np.abs(eig).max()) * 1.05)
        complex_plane(ax, ((-r, r), (-r, r)))
        ax.set_title(name)
    return fig


def atlas(table):
    """The atlas over the unstable plant's pole a (``plant_stages.atlas_table``): left, each
    run's stabilization epoch (dots; at the top if never) against a, beside the clip-speed
    prediction (crosses); right, the fraction of runs stabilized, measured and predicted."""
    fig, ((a1, a2),) = figure(2, height=3.0)
    a, stab, pred, E = table["value"], table["stabilization"], table["predicted"], table["epochs"]
    jitter = 0.03 * (table["seed"] % 7 - 3)
    top = E * 1.08
    a1.scatter(a + jitter, np.where(np.isfinite(stab), stab, top), s=10, color=PALETTE["blue"],
               label="measured (top: never)")
    a1.scatter(a + jitter, np.minimum(pred, top), s=14, marker="x", color=PALETTE["red"],
               lw=0.8, label="clip-speed prediction")
    a1.axhline(E, color="0.4", lw=0.8, ls=":")
    a1.set(xlabel="pole a", ylabel="stabilization epoch", ylim=(0, top * 1.05))
    a1.legend(loc="upper center", fontsize=7)
    values = np.unique(a)
    a2.plot(values, [np.isfinite(stab[a == v]).mean() for v in values], "o-",
            color=PALETTE["blue"], label="measured")
    a2.plot(values, [(pred[a == v] <= E).mean() for v in values], "x--",
            color=PALETTE["red"], label="predicted")
    a2.set(xlabel="pole a", ylabel=f"fraction stabilized by epoch {E}", ylim=(-0.05, 1.05))
    a2.legend(loc="lower center")
    return fig
