"""Chapter 3's claims: short-term improvement against long-term stability, and stage 3.

One function a section of ``book/ch3_tradeoff.ipynb``; each returns ``{glue name: value}``
(module ``closedloop.claims``). Epochs count the reference run's updates, moduli are those of
eigenvalues of P_eff (dimensionless; 1 is the unit circle), gaps are relative differences of
expected losses, in percent where the name says ``pct``.
"""

from __future__ import annotations

import numpy as np

from .. import theory
from ..reduced import balance, symmetry_partner
from ..stages import detect_stages

AUTHORS_FIG4E_EPOCHS = 108  # the authors' Fig. 4e: their shortest horizon over 108 epochs (s.11)


def stage_boundaries(stages, T: int) -> dict:
    """The reference run's stages (``reduced.ReferenceRun.stages``, filled in): the epoch at
    which stage 1 ends (``stage1_end``), the stabilization epoch (``stabilization``), the
    epochs of stage 2 between them (``stage2_length``), and the episode length ``T_used``
    (steps). Section "The reference run"."""
    return {"stage1_end": stages.stage1_end, "stabilization": stages.stabilization,
            "stage2_length": stages.stabilization - stages.stage1_end, "T_used": T}


def _stage2(stages) -> slice:
    """The epochs of stage 2, the stabilization epoch included."""
    return slice(stages.stage1_end, stages.stabilization + 1)


def stage2_theory(history, stages) -> dict:
    """The perturbative theory of stage 2 against the exact roots of the cubic, over the
    epochs stage1_end..stabilization of ``history``: the largest absolute error of lambda_3
    (``lambda3_max_error``), the largest relative error of |lambda_1|^2 by Vieta with it
    (``pair_max_rel_error``), the largest |lambda_1| (``lambda1_max_modulus``) and the growth
    per step it means, in percent (``lambda1_growth_pct``). Section "Stage 2 in closed form".
    """
    q = history.overlaps[_stage2(stages)]
    roots = theory.labelled_roots(q)
    lam3_err = np.abs(theory.perturbative_lambda3(q) - roots[:, 2].real)
    pair_err = np.abs(theory.pair_modulus_sq(q) / np.abs(roots[:, 0]) ** 2 - 1)
    top = float(np.abs(roots[:, 0]).max())
    return {"lambda3_max_error": float(lam3_err.max()),
            "pair_max_rel_error": float(pair_err.max()),
            "lambda1_max_modulus": top, "lambda1_growth_pct": 100 * (top - 1)}


def reversal_fraction(values) -> float:
    """The fraction of consecutive steps of ``values`` (1-d) that reverse the direction of the
    step before (NaN with fewer than two steps)."""
    step = np.diff(np.asarray(values, dtype=float))
    return float(np.mean(step[1:] * step[:-1] < 0)) if len(step) > 1 else float("nan")


def zigzag(h_exact, stages) -> dict:
    """The zig-zag without sampling noise, in the run on the exact expected loss
    (``reduced.exact_rerun``): the percentage of steps of |lambda_1| over the reference run's
    stage 2 that reverse direction (``zigzag_alternating_fraction``), and the exact run's own
    stabilization epoch (``exact_stabilization``; "never" if it did not stabilize).
    Section "The zig-zag"."""
    modulus = np.abs(theory.labelled_roots(h_exact.overlaps[_stage2(stages)])[:, 0])
    stabilization = detect_stages(h_exact).stabilization
    return {"zigzag_alternating_fraction": 100 * reversal_fraction(modulus),
            "exact_stabilization": stabilization if stabilization is not None else "never"}


def alpha_fan(paths, *, T_prime: int, stage2_offset: int, start_epoch: int) -> dict:
    """The alpha-model's fan (a ``reduced.AlphaPaths``, started ``stage2_offset`` epochs into
    stage 2, at ``start_epoch``): its alphas (``alpha_values``), horizon ``T_prime_used``
    (steps) and gradient steps (``alpha_steps_used``); |lambda_1| at the start
    (``alpha_start_modulus``) and at the last step for alpha = first and last of the list
    (``alpha0_final_modulus``, ``alpha1_final_modulus``), the smallest final one
    (``alpha_min_final_modulus``) and its alpha (``alpha_argmin``). Section "The alpha-model".
    """
    final = np.abs(paths.lambda1[-1])
    return {"alpha_values": list(map(float, paths.alpha)), "T_prime_used": T_prime,
            "stage2_offset_used": stage2_offset, "alpha_start_epoch": start_epoch,
            "alpha_start_modulus": float(np.abs(paths.lambda1[0, 0])),
            "alpha0_final_modulus": float(final[0]), "alpha1_final_modulus": float(final[-1]),
            "alpha_min_final_modulus": float(final.min()),
            "alpha_argmin": float(paths.alpha[final.argmin()]),
            "alpha_steps_used": len(paths.lambda1) - 1}


def _r3(values) -> list:
    """Floats rounded to 0.001, as the prose reads them."""
    return [round(float(v), 3) for v in values]


def alpha_band(bands, *, T_prime: int, alphas) -> dict:
    """The band of alpha whose lambda_1 bends back inside the unit circle (a
    ``reduced.AlphaBands``, its paths ``bands.steps`` gradient steps long).

    At the horizon ``T_prime`` (``band_T_prime``): the edges bisected to ``band_tol``
    (``band_lo``, ``band_hi``, ``band_edges`` = [lo, hi] to 0.001; ``band_width``); the
    edges read off the grid after a quarter, half and all of the steps (``band_steps_list``,
    ``band_lo_by_steps``, ``band_hi_by_steps``); |lambda_1| at the last step for each of
    ``alphas`` (``fig4d_alphas``, ``fig4d_final_moduli`` to 0.001) and those of them in the
    band (``fig4d_in_band``). For every horizon (``band_T_primes``): the edges
    (``band_los``, ``band_his``) and ``reduced.balance_alpha`` (``band_balances``), to 0.001;
    ``band_single``: "yes" if on no horizon's grid the returning alphas form more than one run
    (the predicate changes once on either side of the band, as bisection assumes), else "no";
    ``band_naive_changes``: how often "inside at the last step" alone changes along the grid
    at ``T_prime``. Section "The band"."""
    k = bands.index(T_prime)
    lo, hi = float(bands.lo[k]), float(bands.hi[k])
    steps = [max(bands.steps // 4, 1), max(bands.steps // 2, 1), bands.steps]
    by_steps = [bands.grid_edges(T_prime, s) for s in steps]
    final = np.abs(bands.grid.select(T_prime, alphas).lambda1[-1])
    inside = np.abs(bands.grid.lambda1[-1, bands.grid.T_prime == T_prime]) < 1
    return {"band_T_prime": int(T_prime), "band_tol": float(bands.tol),
            "band_lo": lo, "band_hi": hi, "band_edges": _r3([lo, hi]), "band_width": hi - lo,
            "band_steps_list": steps, "band_lo_by_steps": _r3(e[0] for e in by_steps),
            "band_hi_by_steps": _r3(e[1] for e in by_steps),
            "fig4d_alphas": list(map(float, alphas)), "fig4d_final_moduli": _r3(final),
            "fig4d_in_band": [float(a) for a in alphas if lo <= a <= hi],
            "band_T_primes": list(map(int, bands.T_prime)), "band_los": _r3(bands.lo),
            "band_his": _r3(bands.hi), "band_balances": _r3(bands.balance),
            "band_single": "yes" if np.all(bands.runs <= 1) else "no",
            "band_naive_changes": int(np.sum(inside[1:] != inside[:-1]))}


def horizon_fan(h_T, T_fan, epochs: int, T_values=None) -> dict:
    """Networks trained from one stage-2 network with the episode lengths ``T_fan``
    (``h_T``: one member per T, ``epochs`` epochs): the lengths (``T_fan``, ``T_short``,
    ``T_long``: the first and last, steps), the chapter's list they were made from
    (``T_values``; default ``T_fan``), ``T_sweep_epochs_used``, the largest
    |lambda_1| of the first and the last member (``T_short_peak_modulus``,
    ``T_long_peak_modulus``), the first member's at the last epoch (``T_short_final_modulus``)
    and the first epoch at which it is inside the unit circle (``T_short_return_epoch``;
    "never"). Section "Episode length plays alpha"."""
    modulus = np.abs(theory.labelled_roots(h_T.overlaps)[..., 0])
    inside = np.flatnonzero(modulus[:, 0] < 1)
    return {"T_fan": list(map(int, T_fan)), "T_sweep_epochs_used": epochs,
            "T_values": list(map(int, T_fan if T_values is None else T_values)),
            "T_short": int(T_fan[0]), "T_long": int(T_fan[-1]),
            "T_short_peak_modulus": float(modulus[:, 0].max()),
            "T_long_peak_modulus": float(modulus[:, -1].max()),
            "T_short_final_modulus": float(modulus[-1, 0]),
            "T_short_return_epoch": int(inside[0]) if len(inside) else "never"}


def myopic_horizon(scan, authors_epochs: int = AUTHORS_FIG4E_EPOCHS) -> dict:
    """The myopic end of the horizon sweep (a ``reduced.HorizonScan``: copies trained with
    every T = 1..T_max for E epochs): ``T_scan_max``, ``T_scan_epochs`` (E); the longest T
    whose |lambda_1| never comes back inside the unit circle (``T_myopic``; "none"), its
    |lambda_1| (NaN without one) at the start, largest, at the end and at epoch ``authors_epochs``
    (``T_myopic_start_modulus``, ``T_myopic_peak_modulus``, ``T_myopic_final_modulus``,
    ``T_myopic_modulus_at_authors``); ``T_scan_monotone``: "yes" if every shorter T stays
    outside too and every longer one returns, else "no"; the next T (``T_returns``) and the
    epoch its copy first is inside (``T_returns_epoch``; "none" past the scan), and that epoch
    for every longer T of the scan (``T_scan_return_epochs``, in order of T); the myopic T
    over the first ``authors_epochs`` epochs alone (``T_myopic_authors``, ``authors_T_epochs``).
    Section "Episode length plays alpha"."""
    E, nan = len(scan.modulus) - 1, float("nan")
    authors_epochs = min(int(authors_epochs), E)
    T = scan.myopic()
    out = (scan.modulus >= 1).all(0)
    numbers = {"T_scan_max": int(scan.T.max()), "T_scan_epochs": E, "T_myopic": "none",
               "T_scan_monotone": "yes" if np.all(out == (scan.T <= (T or 0))) else "no",
               "T_returns": "none", "T_returns_epoch": "none",
               "authors_T_epochs": authors_epochs,
               "T_myopic_authors": scan.myopic(authors_epochs) or "none",
               **dict.fromkeys(("T_myopic_start_modulus", "T_myopic_peak_modulus",
                                "T_myopic_final_modulus", "T_myopic_modulus_at_authors"), nan)}
    inside = scan.modulus[:, scan.T > (T or 0)] < 1  # (E+1, longer T)
    numbers["T_scan_return_epochs"] = [int(np.argmax(c)) if c.any() else "never"
                                       for c in inside.T]
    if T is None:
        return numbers
    m = scan.modulus[:, int(np.flatnonzero(scan.T == T)[0])]
    numbers.update(T_myopic=T, T_myopic_start_modulus=float(m[0]),
                   T_myopic_peak_modulus=float(m.max()), T_myopic_final_modulus=float(m[-1]),
                   T_myopic_modulus_at_authors=float(m[authors_epochs]))
    if T + 1 in scan.T:
        numbers.update(T_returns=T + 1, T_returns_epoch=numbers["T_scan_return_epochs"][0])
    return numbers


def stage3_gaps(runs, epochs: int) -> dict:
    """The full network against its reduced models over stage 3 (a ``reduced.Stage3Runs`` of
    ``epochs`` epochs, first member: beta = betas[0]). ``reduced_seed`` drew the reduced
    models' batches. The paper's model: median and largest relative loss gap in percent
    (``paper_model_gap_pct``, ``paper_model_max_gap_pct``), the stage-3 epoch of the largest
    (``paper_model_max_gap_epoch``), the percentage of epochs in which its loss is the lower
    (``paper_model_ahead_pct``), its final loss and the network's (``paper_final_loss``,
    ``full_final_loss``). The frozen-metric model: median gap (``frozen_metric_gap_pct``) and
    the percentage of epochs in which its loss is the higher (``frozen_metric_behind_pct``).
    The exact reduction: largest relative loss gap (``compressed_max_rel_error``, a fraction).
    Each model's largest distance between matched final eigenvalues and the network's
    (``stage3_final_eig_gap`` for the paper's, ``frozen_metric_final_eig_gap``,
    ``compressed_final_eig_gap``). Section "Stage 3: four numbers are enough?"."""
    full_loss, paper_loss = runs.full.expected_loss[:, 0], runs.paper.expected_loss[:, 0]
    gap_paper = runs.loss_gap("paper")
    return {"stage3_epochs_used": epochs, "reduced_seed": runs.reduced_seed,
            "paper_model_gap_pct": runs.median_gap_pct("paper"),
            "paper_model_max_gap_pct": 100 * float(gap_paper.max()),
            "paper_model_max_gap_epoch": int(gap_paper.argmax()),
            "paper_model_ahead_pct": 100 * float(np.mean(paper_loss < full_loss)),
            "frozen_metric_gap_pct": runs.median_gap_pct("frozen_metric"),
            "frozen_metric_behind_pct": 100 * float(np.mean(runs.frozen_metric.expected_loss
                                                            > full_loss)),
            "compressed_max_rel_error": float(runs.loss_gap("compressed").max()),
            "stage3_final_eig_gap": runs.final_eig_gap("paper"),
            "frozen_metric_final_eig_gap": runs.final_eig_gap("frozen_metric"),
            "compressed_final_eig_gap": runs.final_eig_gap("compressed"),
            "full_final_loss": float(full_loss[-1]), "paper_final_loss": float(paper_loss[-1])}


def stage3_why(runs) -> dict:
    """Why four numbers drift (a ``reduced.Stage3Runs``, first member): the network's metric
    G, |m|^2 (``m_sq``) and the rates of s_zu and s_vu at the start and end of stage 3
    (``zu_metric_start``/``_end``: |u|^2 + |z|^2; ``vu_metric_start``/``_end``:
    |u|^2 + |v|^2); the balance s_zu^2 - s_vm^2 at the start and at the end of the paper's
    model and of the network (``balance_start``, ``balance_paper_end``, ``balance_full_end``);
    the final ratios s_zu / s_vm and products s_zu s_vm (``ratio_full_end``,
    ``ratio_paper_end``, ``product_full_end``, ``product_paper_end``); the factor
    ``symmetry_c`` that moves the network's final overlaps along the loss's symmetry to the
    paper's model's balance, and the largest overlap distance between the two finals before
    (``direct_distance``) and after that move (``orbit_distance``).
    Section "Why four numbers drift: growing norms and a symmetry"."""
    G = runs.full.metric[:, 0]
    q_full, q_paper = runs.full.overlaps[-1, 0], runs.paper.overlaps[-1, 0]
    partner, c = symmetry_partner(q_full, balance(q_paper))
    return {"m_sq": float(G[0, 0, 0]),
            "zu_metric_start": float(G[0, 1, 1]), "zu_metric_end": float(G[-1, 1, 1]),
            "vu_metric_start": float(G[0, 3, 3]), "vu_metric_end": float(G[-1, 3, 3]),
            "balance_start": float(balance(runs.full.overlaps[0, 0])),
            "balance_paper_end": float(balance(q_paper)),
            "balance_full_end": float(balance(q_full)),
            "ratio_full_end": float(q_full[1] / q_full[2]),
            "ratio_paper_end": float(q_paper[1] / q_paper[2]),
            "product_full_end": float(q_full[1] * q_full[2]),
            "product_paper_end": float(q_paper[1] * q_paper[2]),
            "symmetry_c": c, "direct_distance": float(np.abs(q_full - q_paper).max()),
            "orbit_distance": float(np.abs(partner - q_paper).max())}


def seed_spread(spread: dict, epochs: int) -> dict:
    """The paper's model against the network over independent runs (``reduced.stage3_spread``
    of ``epochs`` epochs each): the runs (``n_seeds_used``, ``last_seed``, ``epochs_used``),
    how many stabilized (``n_stabilized``), their median gaps in percent to 0.1
    (``seed_gaps_pct``), their largest gaps to whole percent (``seed_max_gaps_pct``), the
    median of the median gaps (``seed_gap_median_pct``; NaN if none stabilized), and in how
    many the paper's model's median loss is above the network's (``n_paper_behind``).
    Section "Why four numbers drift", seeds."""
    median, ok = spread["median_gap_pct"], ~np.isnan(spread["median_gap_pct"])
    return {"n_seeds_used": len(spread["seed"]), "last_seed": int(spread["seed"][-1]),
            "epochs_used": epochs, "n_stabilized": int(ok.sum()),
            "seed_gaps_pct": [round(float(g), 1) for g in median[ok]],
            "seed_max_gaps_pct": [round(float(g)) for g in spread["max_gap_pct"][ok]],
            "seed_gap_median_pct": float(np.median(median[ok])) if ok.any() else float("nan"),
            "n_paper_behind": int(np.nansum(spread["behind"]))}


def control_cost(runs) -> dict:
    """Stage 3 with a control cost (a ``reduced.Stage3Runs``, one member per beta), lists in
    the order of ``beta_values``: the paper's model's median loss gap in percent to 0.01
    (``beta_gaps_pct``), its largest matched final eigenvalue distance to 0.001
    (``beta_eig_gaps``), its final loss gap in percent to 0.01 (``beta_final_gaps_pct``), and
    the network's final |u|^2 + |z|^2 to 0.01 (``beta_zu_metric_end``).
    Section "With a control cost"."""
    members = range(len(runs.betas))
    return {"beta_values": list(map(float, runs.betas)),
            "beta_gaps_pct": [round(runs.median_gap_pct("paper", k), 2) for k in members],
            "beta_eig_gaps": [round(runs.final_eig_gap("paper", k), 3) for k in members],
            "beta_final_gaps_pct": [round(100 * float(runs.loss_gap("paper", k)[-1]), 2)
                                    for k in members],
            "beta_zu_metric_end": [round(float(runs.full.metric[-1, k, 1, 1]), 2)
                                   for k in members]}
