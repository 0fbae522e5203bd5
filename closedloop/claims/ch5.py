"""Chapter 5's claims (the atlas): one function a section, each ``{glue name: value}``.

The numbers themselves are computed in ``closedloop.atlas`` (stage tables, trends, the
excursion map); here they are named as the chapter's prose reads them.
"""

from __future__ import annotations

import math

from .. import atlas
from ..conventions import INITS

_TREND = ("word", "low", "high", "spearman")


def sweeps(h_T, h_N, h_X, seconds: float, engine) -> dict:
    """Section "How the atlas is run": ``n_trainings`` (every training of the three grids,
    the excursion map's teachers included; ``atlas.trainings``), ``n_rank_one`` (those of the
    rank-one network: the (T, lr) and (N, s_zm(0)) grids), ``sweep_seconds`` (the wall-clock
    seconds the three sweeps took, as measured by the caller) and ``engine`` (the engine's
    name, a str)."""
    n_rank_one = atlas.trainings(h_T) + atlas.trainings(h_N)
    return {"n_trainings": n_rank_one + atlas.trainings(h_X), "n_rank_one": n_rank_one,
            "sweep_seconds": seconds, "engine": str(engine)}


def horizon(history, table: dict, T_values, lr_values) -> dict:
    """Section "Horizon and step size" (and "Stage 2 against the horizon"), from the (T, lr)
    grid's ``atlas.horizon_summary``: ``T_n_runs``, ``T_stabilized_fraction`` (share of runs
    stable at their last epoch); at the paper's point (T = 50, lr = 0.01) ``T_paper_point_runs``
    (seeds), the medians over seeds ``T_paper_stabilization_median`` (epoch),
    ``T_paper_final_rho_median``, ``T_paper_stage2_length_median`` (epochs) and the ranges
    ``T_paper_stabilization_lo``/``_hi`` (epochs), ``T_paper_final_rho_lo``/``_hi``; for each
    of stabilization (epoch), stage2_length (epochs), final_rho along T (at lr = 0.01) and lr
    (at T = 50): ``<key>_vs_<axis>_word`` (``atlas.direction``), ``_low``/``_high`` (medians at
    the smallest and largest value) and ``_spearman``; the grid's ends ``T_min``, ``T_max``
    (steps), ``lr_min``, ``lr_max`` as given in ``T_values`` and ``lr_values``."""
    s = atlas.horizon_summary(history, table)
    out = {f"T_{k}": s[k] for k in ("n_runs", "stabilized_fraction", "paper_point_runs",
                                    "paper_stabilization_median", "paper_final_rho_median",
                                    "paper_stage2_length_median")}
    for key in ("stabilization", "final_rho"):
        out[f"T_paper_{key}_lo"], out[f"T_paper_{key}_hi"] = s[f"paper_{key}_range"]
    for key in ("stabilization", "stage2_length", "final_rho"):
        out.update(_trend("", s, f"{key}_vs_T"))
        out.update(_trend("", s, f"{key}_vs_lr"))
    return {**out, "T_min": min(T_values), "T_max": max(T_values), "lr_min": min(lr_values),
            "lr_max": max(lr_values)}


def feedback(history, table: dict, N_values, s_zm0_values) -> dict:
    """Section "Network size and initial feedback", from the (N, s_zm(0)) grid's
    ``atlas.feedback_summary``: ``N_n_runs``, ``N_stage1_share_negative``/``_positive``
    (share of the runs started with s_zm(0) < 0 / > 0 that went through a stage 1),
    ``N_final_rho_cell_spread`` (max - min of the cell medians of the final rho(P)),
    ``N_final_rho_median``; for the end of stage 1 against s_zm(0) > 0
    (``N_stage1_end_vs_szm0_*``, epochs), the stabilization epoch against s_zm(0) and
    against N (``N_stabilization_vs_szm0_*``, ``N_stabilization_vs_N_*``): ``_word``,
    ``_low``, ``_high``, ``_spearman`` as in ``horizon``; the grid's ends ``N_min``, ``N_max``,
    ``szm0_max`` and ``szm0_min_pos`` (the smallest positive s_zm(0); NaN without one)."""
    s = atlas.feedback_summary(history, table)
    out = {f"N_{k}": s[k] for k in ("n_runs", "stage1_share_negative", "stage1_share_positive",
                                    "final_rho_cell_spread", "final_rho_median")}
    for key in ("stage1_end_vs_szm0", "stabilization_vs_szm0", "stabilization_vs_N"):
        out.update(_trend("N_", s, key))
    positive = [v for v in s_zm0_values if v > 0]
    return {**out, "N_min": min(N_values), "N_max": max(N_values),
            "szm0_max": max(s_zm0_values),
            "szm0_min_pos": min(positive) if positive else math.nan}


def excursion(history, peaks: dict, N: int) -> dict:
    """Section "The open-loop excursion as a map", from ``atlas.excursion_summary``:
    ``X_n_runs`` (students), ``X_paper_ratio`` (peak / final closed-loop test loss, median
    over seeds, at the authors' initial scale and lr), ``X_paper_epoch`` (its epoch),
    ``X_min_cell_ratio``/``X_max_cell_ratio`` (the extreme cell medians of the ratio),
    ``X_excursion_share`` (share of runs whose test loss rose above the untrained network's),
    ``X_share_<init>`` (that share per initial scale of ``conventions.INITS``, e.g.
    ``X_share_paper``; NaN for a scale the grid left out, so the prose still builds) and
    ``excursion_N`` (the networks' size, ``N``)."""
    s = atlas.excursion_summary(history, peaks)
    out = {f"X_{k}": s[k] for k in ("n_runs", "paper_ratio", "paper_epoch", "min_cell_ratio",
                                    "max_cell_ratio", "excursion_share")}
    shares = s["excursion_share_by_init"]
    out.update({f"X_share_{init}": shares.get(init, math.nan) for init in INITS})
    return {**out, "excursion_N": N}


def _trend(prefix: str, summary: dict, key: str) -> dict:
    """``<prefix><key>_word``, ``_low``, ``_high``, ``_spearman`` of a summary's trend ``key``
    (its ``<key>_word`` and the ``low``, ``high``, ``spearman`` of ``summary[key]``)."""
    t = {**summary[key], "word": summary[f"{key}_word"]}
    return {f"{prefix}{key}_{part}": t[part] for part in _TREND}
