"""Plotting primitives shared by every chapter: one style, the complex plane, stage shading."""

from __future__ import annotations

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np

# Okabe & Ito's colorblind-safe palette
PALETTE = {"blue": "#0072B2", "orange": "#E69F00", "green": "#009E73", "red": "#D55E00",
           "purple": "#CC79A7", "sky": "#56B4E9", "yellow": "#F0E442", "black": "#000000"}
STAGE_COLORS = {"stage 1": "#D55E00", "stage 2": "#E69F00", "stage 3": "#009E73"}
# the chapters' colours, shared by their figures and explorers
LOOP_COLORS = {"closed": PALETTE["blue"], "open": PALETTE["red"]}  # Chapter 1's two trainings
REGION_COLORS = ("#CDE8D8", "#F6D9C7", "#E5E5E5")  # stable, unstable oscillatory, unstable real
ABLATION_COLORS = (PALETTE["black"], PALETTE["orange"], PALETTE["sky"], PALETTE["green"],
                   PALETTE["purple"], PALETTE["red"], PALETTE["blue"])  # Chapter 1's settings
FREQ_COLORS = [PALETTE[c] for c in ("blue", "orange", "green", "red", "purple", "sky")]  # Ch. 4
WIDTH = 7.0  # inches: one full-width figure in the book


def use_style():
    """Apply the book's matplotlib style (call once per notebook)."""
    mpl.rcParams.update({
        "figure.figsize": (WIDTH, 3.2), "figure.dpi": 110, "savefig.dpi": 110,
        "figure.constrained_layout.use": True,
        "axes.prop_cycle": mpl.cycler(color=[PALETTE[k] for k in
                                             ("blue", "orange", "green", "red", "purple",
                                              "sky", "black")]),
        "axes.spines.top": False, "axes.spines.right": False, "axes.grid": True,
        "grid.alpha": 0.25, "font.size": 10, "axes.titlesize": 10, "legend.fontsize": 8,
        "legend.frameon": False, "lines.linewidth": 1.5, "image.cmap": "viridis",
    })


def figure(ncols=1, nrows=1, height=3.2, **kw):
    """A book-width figure with a grid of axes."""
    return plt.subplots(nrows, ncols, figsize=(WIDTH, height), squeeze=False, **kw)


def complex_plane(ax, lim=None, circle=True):
    """Unit circle, equal aspect and labelled axes for plotting eigenvalues."""
    if circle:
        t = np.linspace(0, 2 * np.pi, 400)
        ax.plot(np.cos(t), np.sin(t), color="0.4", lw=0.8, ls="--", zorder=0)
    ax.axhline(0, color="0.6", lw=0.5, zorder=0)
    ax.axvline(0, color="0.6", lw=0.5, zorder=0)
    ax.set_aspect("equal")
    if lim is not None:
        (x0, x1), (y0, y1) = lim
        ax.set_xlim(x0, x1), ax.set_ylim(y0, y1)
    ax.set_xlabel("Re $\\lambda$"), ax.set_ylabel("Im $\\lambda$")
    return ax


def eig_scatter(ax, eigs, epochs, cmap="viridis", norm=None, s=8, **kw):
    """Eigenvalues (E, d) complex, coloured by epoch (E,); returns the ScalarMappable."""
    eigs = np.asarray(eigs)
    ep = np.broadcast_to(np.asarray(epochs)[:, None], eigs.shape)
    norm = norm or mpl.colors.Normalize(ep.min(), max(ep.max(), ep.min() + 1))
    return ax.scatter(eigs.real.ravel(), eigs.imag.ravel(), c=ep.ravel(), cmap=cmap, norm=norm,
                      s=s, linewidths=0, **kw)


def shade_stages(ax, stages, offset=0, labels=True):
    """Shade the stage spans of a ``Stages`` (x = epoch + offset) with a label at the top."""
    lo, hi = (-np.inf, np.inf) if ax.get_autoscalex_on() else ax.get_xlim()
    for label, start, stop in stages.spans():
        start, stop = max(start, lo - offset), min(stop, hi - offset)  # only what is in view
        if stop <= start:
            continue
        ax.axvspan(start + offset, stop + offset, color=STAGE_COLORS[label], alpha=0.12, lw=0)
        if labels:
            ax.text(np.sqrt(max(start + offset, 1e-9) * (stop + offset))
                    if ax.get_xscale() == "log" else (start + stop) / 2 + offset,
                    0.98, label, transform=ax.get_xaxis_transform(), ha="center", va="top",
                    fontsize=8, color=STAGE_COLORS[label])


def epoch_colorbar(fig, mappable, ax, label="epoch"):
    cb = fig.colorbar(mappable, ax=ax, shrink=0.85, pad=0.02)
    cb.set_label(label)
    return cb


def sampled_vs_exact(h_sampled, h_exact, batch_losses, exact_value, batch):
    """Training in the two loss modes (left: each history's ``expected_loss``), and the spread
    of ``batch_losses`` of the final network around ``exact_value`` (right). Used by the
    chapters with an exact loss mode (2 and 4)."""
    fig, ((a1, a2),) = figure(2, height=3.0)
    for h, c, lab in ((h_sampled, "sky", "trained on sampled batches"),
                      (h_exact, "black", "trained on the exact loss")):
        a1.plot(h.epoch + 1, h.expected_loss, color=PALETTE[c], label=lab)
    a1.set(xscale="log", yscale="log", xlabel="epoch + 1", ylabel="expected loss")
    a1.legend(loc="lower left")
    a2.hist(batch_losses, bins=40, color=PALETTE["sky"], alpha=0.8)
    a2.axvline(exact_value, color=PALETTE["black"], label="exact expected loss")
    a2.axvline(np.mean(batch_losses), color=PALETTE["red"], ls="--", label="mean of batches")
    a2.set(xlabel=f"loss of a batch of {batch}", ylabel="count", title="final network")
    a2.legend(loc="upper right")
    return fig


def glue_figure(name: str, fig) -> None:
    """Hand ``fig`` to the book under ``name`` (myst-nb's glue, ``_glue``) and close it, so that
    the page shows it once, where the text places it with ``{glue:figure}``, not also under the
    cell."""
    from ._glue import glue

    glue(name, fig)
    plt.close(fig)
