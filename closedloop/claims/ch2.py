"""Chapter 2's named numbers (``book/ch2_stages.ipynb``): one function a section.

Epochs are those of ``closedloop.stages`` (row e of a history is the network before update e);
losses are expected closed-loop losses in the run's convention unless a name says otherwise. A
stage boundary that a run never reached is ``None`` in a single run's numbers and NaN in
arrays over runs (``stages.independent_runs``), so medians over runs that did not all get there
are NaN.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from .. import coupled, theory
from ..stages import AUTHORS, detect_stages, epoch_percentile, median_of_n, member_stages
from . import listed, standard_errors


def setup(env, T: int) -> dict:
    """Section "The setup": ``x0_term``, the constant E|x_0|^2 / (2T) that counting x_0 adds to
    every loss of the authors' convention (squared distance per step)."""
    return {"x0_term": float(env.x0.second_moment().trace()) / (2 * T)}


def coupled_identity(agent, env) -> dict[str, bool]:
    """Section "The coupled system": {statement: whether it holds} for the rank-one ``agent``:
    the nonzero eigenvalues of the full P are those of P_eff, and so are the roots of the
    characteristic cubic of its overlaps (to ``np.allclose``; |eig| <= 1e-8 counts as zero)."""
    eig_P = torch.linalg.eigvals(coupled.coupled_matrix(agent, env).detach()).numpy()
    eig_eff = coupled.spectrum(agent, env).numpy()
    roots = theory.cubic_roots(agent.overlaps().detach())
    return {"nonzero eig(P) = nonzero eig(P_eff)": _same(_nonzero(eig_P), _nonzero(eig_eff)),
            "cubic roots = nonzero eig(P_eff)": _same(roots, _nonzero(eig_eff))}


def _nonzero(eigs) -> np.ndarray:
    eigs = np.asarray(eigs)
    return eigs[np.abs(eigs) > 1e-8]


def _same(a, b) -> bool:
    """Whether two collections of complex numbers are equal as sorted lists (``np.allclose``)."""
    a, b = np.sort_complex(np.ravel(a)), np.sort_complex(np.ravel(b))
    return a.shape == b.shape and bool(np.allclose(a, b))


def as_lines(checks: Mapping[str, object]) -> str:
    """``{statement: value}`` as the lines "statement: value", the form a checked cell prints."""
    return "\n".join(f"{statement}: {value}" for statement, value in checks.items())


def one_run(history, stages, seed: int) -> dict:
    """Section "Three stages", the chapter's run (its ``seed``, as ``seed_used``):
    ``s_zm_initial`` (s_zm of the network before
    training), ``stage1_end_epoch`` and ``stabilization_epoch`` (epochs of ``stages``, None if
    never reached), ``final_loss`` and ``final_spectral_radius`` (the final network's expected
    loss and rho(P)) and ``train_seconds`` (wall time of the training, s)."""
    return {"seed_used": seed, "s_zm_initial": float(history.overlaps[0, 0]),
            "stage1_end_epoch": stages.stage1_end,
            "stabilization_epoch": stages.stabilization,
            "final_loss": float(history.expected_loss[-1]),
            "final_spectral_radius": float(history.spectral_radius[-1]),
            "train_seconds": history.seconds}


def seed_spread(head, spread) -> dict:
    """Section "Three stages", how typical the run is: ``shared_batches``, ``independent_seeds``
    and ``stabilization_spread`` of the runs ``head`` (each with its own batches) and ``spread``
    (one ensemble on shared batches), both ``stages.independent_runs`` results."""
    return {**shared_batches(head, spread), **independent_seeds(head),
            **authors_runs(head), **stabilization_spread(spread)}


def shared_batches(head, spread) -> dict:
    """Do shared batches change the stabilization epoch? Over the seeds run both ways
    (``shared_compared``, int): ``shared_same`` (int), how many stabilized at the same epoch,
    and ``shared_max_diff`` (epochs, float; NaN if a run of them never stabilized), the largest
    gap between the two runs of a seed."""
    common, i_head, i_spread = np.intersect1d(head["seed"], spread["seed"], return_indices=True)
    if common.size == 0:
        raise ValueError("head and spread have no seed in common to compare")
    a, b = spread["stabilization"][i_spread], head["stabilization"][i_head]
    return {"shared_same": int(np.sum(a == b)),
            "shared_max_diff": float(np.max(np.abs(a - b))),
            "shared_compared": int(common.size)}


def independent_seeds(runs) -> dict:
    """The runs of separate seeds: ``n_seeds_used`` and ``last_seed`` (int); ``stab_values``,
    their stabilization epochs in seed order (list of int, None: never); ``stab_median`` (float,
    a run that never stabilized counting as the latest, ``stages.epoch_percentile``: NaN only
    if the median is such a run); ``stab_min`` and ``stab_max`` over the runs that stabilized
    (int, or the str "never" if none did); the range of ``final_loss`` (``loss_min``,
    ``loss_max``) and of the final rho(P) (``rho_min``, ``rho_max``, ``rho_median``); and, in
    seed order, the batch loss and rho(P) before the last update (``last_losses``,
    ``last_rhos``, lists of float: what the authors' code records last); the same three
    lists as phrases for the prose (``stab_words``, ``last_losses_words``,
    ``last_rhos_words``)."""
    stab, loss, rho = runs["stabilization"], runs["final_loss"], runs["final_spectral_radius"]
    reached = stab[~np.isnan(stab)]
    return {"n_seeds_used": len(runs["seed"]),
            "last_losses": [float(v) for v in runs["last_update_loss"]],
            "last_rhos": [float(v) for v in runs["last_update_rho"]],
            "stab_words": listed([None if np.isnan(e) else int(e) for e in stab]),
            "last_losses_words": listed(runs["last_update_loss"], ".5f"),
            "last_rhos_words": listed(runs["last_update_rho"], ".6f"),
            "last_seed": int(runs["seed"][-1]),
            "stab_values": [None if np.isnan(e) else int(e) for e in stab],
            "stab_median": epoch_percentile(stab, 50),
            "stab_min": int(reached.min()) if reached.size else "never",
            "stab_max": int(reached.max()) if reached.size else "never",
            "loss_min": float(loss.min()), "loss_max": float(loss.max()),
            "rho_min": float(rho.min()), "rho_max": float(rho.max()),
            "rho_median": float(np.median(rho))}


def authors_runs(runs) -> dict:
    """The runs at the seeds the authors' code was run with (``AUTHORS['seeds']``) against
    its records there: ``authors_compared`` (int), how many of those seeds ``runs`` holds;
    ``authors_stab_same`` (int), how many stabilized at the authors' epoch;
    ``authors_loss_gap`` and ``authors_rho_gap`` (float, NaN if none compared), the largest
    relative difference of the batch loss and of rho(P) before the last update."""
    seeds = list(runs["seed"])
    pick = [(k, seeds.index(s)) for k, s in enumerate(AUTHORS["seeds"]) if s in seeds]
    gap = lambda key, ref: max((abs(runs[key][i] / AUTHORS[ref][k] - 1) for k, i in pick),
                               default=np.nan)
    return {"authors_compared": len(pick),
            "authors_stab_same": sum(int(runs["stabilization"][i] == AUTHORS["stabilization"][k])
                                     for k, i in pick),
            "authors_loss_gap": float(gap("last_update_loss", "last_update_loss")),
            "authors_rho_gap": float(gap("last_update_rho", "last_update_rho"))}


def stabilization_spread(runs) -> dict:
    """The distribution of the stabilization epoch over many runs (epochs, float; a run that
    never stabilized counts as the latest, NaN where a quantile lands on one): ``spread_n``
    runs (int), seeds up to ``spread_last_seed``; ``spread_median``, quartiles
    ``spread_q25``/``spread_q75``, ``spread_max``; ``median5_lo``/``median5_hi``, the 5th and
    95th percentiles of the median of five runs drawn from these (``stages.median_of_n``);
    where the authors' runs fall among these (% of the runs stabilized by each epoch):
    ``authors_pcts`` (list, one per run of their code at seeds 0-3; as a phrase,
    ``authors_pcts_words``) and ``figure_pct`` (the run of the paper's figure, epoch 129)."""
    stab = runs["stabilization"]
    lo, hi = median_of_n(stab, 5, q=(5, 95))
    by = lambda epoch: 100 * float(np.mean(stab <= epoch))  # NaN (never) compares False
    return {"spread_n": len(stab), "spread_last_seed": int(runs["seed"][-1]),
            "spread_median": epoch_percentile(stab, 50),
            "spread_q25": epoch_percentile(stab, 25),
            "spread_q75": epoch_percentile(stab, 75),
            "spread_max": epoch_percentile(stab, 100),
            "median5_lo": float(lo), "median5_hi": float(hi),
            "authors_pcts": [by(e) for e in AUTHORS["stabilization"]],
            "authors_pcts_words": listed([by(e) for e in AUTHORS["stabilization"]], ".0f"),
            "figure_pct": by(AUTHORS["figure_stabilization"])}


def conventions(setups: Mapping[str, Mapping]) -> dict:
    """Section "What the unstated conventions change": for each ``{name: independent_runs
    result}``, the medians over its runs of the stabilization epoch (``tab_{name}_stab``), of
    the final loss in the authors' convention (``tab_{name}_loss_paper``) and in its own
    (``tab_{name}_loss_own``) and of the final rho(P) (``tab_{name}_rho``); and
    ``window_loss_shift``, the median over the runs of setup "book_window" of (authors'
    loss - own loss) of the same final network: what the book's window x_1..x_T changes."""
    out = {}
    for name, runs in setups.items():
        out[f"tab_{name}_stab"] = float(np.median(runs["stabilization"]))
        out[f"tab_{name}_loss_paper"] = float(np.median(runs["final_loss_paper"]))
        out[f"tab_{name}_loss_own"] = float(np.median(runs["final_loss"]))
        out[f"tab_{name}_rho"] = float(np.median(runs["final_spectral_radius"]))
    window = setups["book_window"]
    out["window_loss_shift"] = float(np.median(window["final_loss_paper"] - window["final_loss"]))
    return out


def stage1_theory(s_grid, simulated, estimate, away: float = 0.05) -> dict:
    """Section "The stage-1 loss in closed form": ``sim_decades``, the orders of magnitude
    (log10 of max / min) that the exact losses ``simulated`` span over ``s_grid``; ``ratio_min``
    and ``ratio_max``, the range of simulated / ``estimate`` at |s_zm| >= ``away``, and
    ``ratio_spread`` = ratio_max / ratio_min (1: the estimate is exact up to a constant)."""
    s_grid, simulated, estimate = (np.asarray(a, dtype=float)
                                   for a in (s_grid, simulated, estimate))
    kept = np.abs(s_grid) >= away
    ratio = simulated[kept] / estimate[kept]
    return {"sim_decades": float(np.log10(simulated.max() / simulated.min())),
            "ratio_min": float(ratio.min()), "ratio_max": float(ratio.max()),
            "ratio_spread": float(ratio.max() / ratio.min())}


def s_zm_sweep(history, s_zm0) -> dict:
    """Section "Stage 1", the sweep over s_zm(0) (one ensemble ``history``, member k started at
    ``s_zm0[k]``): ``n_sweep_used`` (int) runs; ``sweep_negative_epoch``, the epoch from which
    every run keeps s_zm < 0 (int, or the str "never" if one never settles); and
    ``stage1_epochs_per_tenth``, the median over the runs started at s_zm(0) > 0 that settled of
    stage 1's length per 0.1 of initial feedback, 0.1 * stage1_end / s_zm(0) (epochs, float;
    NaN if there is none)."""
    s_zm0 = np.asarray(s_zm0, dtype=float)
    ends = [st.stage1_end for st in member_stages(history)]
    if len(ends) != s_zm0.size:
        raise ValueError(f"s_zm0 has {s_zm0.size} values for {len(ends)} members")
    settled = [e for e in ends if e is not None]
    per_tenth = [0.1 * e / s for e, s in zip(ends, s_zm0) if s > 0 and e is not None]
    return {"n_sweep_used": len(ends),
            "sweep_negative_epoch": max(settled) if len(settled) == len(ends) else "never",
            "stage1_epochs_per_tenth": float(np.median(per_tenth)) if per_tenth else float("nan")}


def sampled_vs_exact(batch_losses, exact_value: float, h_exact) -> dict:
    """Section "Sampled and exact loss": ``n_batches_used`` (int) batch losses of the final
    network (``stages.batch_losses``); ``modes_gap_sigma``, the distance of their mean from the
    exact expected loss ``exact_value`` in standard errors (std / sqrt(n), float); and
    ``exact_stabilization_epoch``, the stabilization epoch of the exact-mode run ``h_exact``
    (None if never)."""
    return {"n_batches_used": len(batch_losses),
            "modes_gap_sigma": abs(standard_errors(batch_losses, exact_value)),
            "exact_stabilization_epoch": detect_stages(h_exact).stabilization}


def sampled_agrees(numbers: Mapping[str, object], within: float = 4.0) -> dict[str, bool]:
    """{statement: holds}: the sampled mean lies within ``within`` standard errors of the exact
    loss (``numbers`` from ``sampled_vs_exact``)."""
    statement = f"sampled mean agrees with the exact loss (within {within:g} standard errors)"
    return {statement: bool(numbers["modes_gap_sigma"] < within)}
