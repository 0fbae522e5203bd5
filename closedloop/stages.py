"""Where the stages of closed-loop learning begin and end, read off a training history, and
the spread of the stage boundaries over independent runs.

The epochs follow the authors' code (``shared/paper.md`` section 9): row e of a history is
the network *before* update e, and the stabilization epoch is the first epoch after which
every |eig(P)| < 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from . import _checks


@dataclass(frozen=True)
class Stages:
    """Epoch boundaries: stage 1 is [0, stage1_end), stage 2 [stage1_end, stabilization),
    stage 3 [stabilization, end]. A boundary that was never reached is None."""

    stage1_end: int | None
    stabilization: int | None
    last_epoch: int

    def spans(self):
        """[(label, start, stop)] for the stages that occurred (stop exclusive)."""
        b = [0, self.stage1_end, self.stabilization, self.last_epoch + 1]
        out, start = [], 0
        for i, label in enumerate(("stage 1", "stage 2", "stage 3")):
            stop = next((x for x in b[i + 1:] if x is not None), self.last_epoch + 1)
            if stop > start:
                out.append((label, start, stop))
            start = max(start, stop)
            if b[i + 1] is None and i + 1 < 3:
                # a missing boundary: the remaining stages did not happen
                break
        return out


    def representative_epochs(self) -> list[int]:
        """Distinct epochs that show each stage: start, end of stage 1, mid stage 2, end."""
        cands = [0, self.stage1_end]
        if self.stage1_end is not None and self.stabilization is not None:
            cands.append((self.stage1_end + self.stabilization) // 2)
        cands.append(self.last_epoch)
        return sorted({c for c in cands if c is not None})


def settles(epochs, condition) -> int | None:
    """First epoch from which ``condition`` holds at every later recorded epoch (None: never).

    ``epochs`` (E,), ``condition`` (E,) boolean.
    """
    epochs, condition = _array(epochs), _array(condition)
    if epochs.shape != condition.shape or epochs.ndim != 1:
        raise ValueError(f"epochs and condition must be 1-d of equal length, got "
                         f"{epochs.shape} and {condition.shape}")
    if epochs.dtype.kind not in "iuf" or not np.isfinite(epochs).all():
        raise ValueError(f"epochs must be finite numbers, got {epochs.dtype} values")
    if epochs.dtype.kind == "f" and not np.all(epochs == np.round(epochs)):
        raise ValueError("epochs must be whole numbers (epoch indices), got fractional values")
    if condition.dtype.kind not in "biuf" or np.isnan(condition).any():
        raise ValueError(f"condition must be booleans, got {condition.dtype} values")
    condition = condition.astype(bool)
    if condition.size == 0 or not condition[-1]:
        return None
    bad = np.flatnonzero(~condition)
    return int(epochs[0] if bad.size == 0 else epochs[bad[-1] + 1])


def _array(x) -> np.ndarray:
    try:
        return np.asarray(x.detach().cpu() if hasattr(x, "detach") else x)
    except (TypeError, ValueError):  # ragged or odd input: reported by the shape check
        return np.asarray(None)


def detect_stages(history) -> Stages:
    """Stage boundaries of a single (non-ensemble) training history.

    stage1_end: the feedback sign settles - s_zm = z.m < 0 from there on (recorded as
    overlaps for rank-one agents, as instant_gain by a ``gains.probe`` monitor otherwise);
    stabilization: rho(P) < 1 from there on: the first epoch e such that the networks recorded
    at e and at every later epoch (each before its epoch's update, the last after the final
    one) have every |eig(P)| < 1 (the coupled system is linearized at the target for tanh
    networks). Needs eigenvalue records (``eig_every >= 1``).
    Introduced in Chapter 2, section "Three stages"; used for tanh networks in Chapter 1.
    """
    arrays = getattr(history, "arrays", None)
    if not isinstance(arrays, dict):
        raise TypeError(f"history must be a training History, got {type(history).__name__}")
    missing = [k for k in ("spectral_radius", "eig_epoch") if k not in arrays]
    if missing:
        raise ValueError(f"detect_stages needs the spectral radius of the coupled system, but "
                         f"the history has no {' or '.join(missing)} records: train with "
                         f"eig_every >= 1 (eig_every=0 records no eigenvalues)")
    if "epoch" not in arrays:
        raise ValueError("detect_stages needs the history's epoch records (key 'epoch')")
    if "overlaps" in arrays:
        feedback, f_epoch = arrays["overlaps"][..., 0], arrays["epoch"]
    elif "instant_gain" in arrays:
        feedback, f_epoch = arrays["instant_gain"], arrays["monitor_epoch"]
    else:
        raise ValueError("detect_stages needs overlaps (rank-one) or instant_gain (a "
                         "gains.probe monitor) in the history")
    rho = arrays["spectral_radius"]
    if feedback.ndim != 1 or rho.ndim != 1:
        raise ValueError("detect_stages needs a single run; use history.member(k) for ensembles")
    end1 = settles(f_epoch, feedback < 0)
    stab = settles(arrays["eig_epoch"], rho < 1)
    return Stages(end1, stab, int(history.epoch[-1]))


#: The authors' rank-one runs (``shared/paper.md`` sections 5 and 10): their code at seeds
#: 0-3 (the authors' stream), its stabilization epochs, and the training loss and rho(P) at the
#: last update (epoch 999); the run of the paper's figure (unseeded: it cannot be redrawn),
#: its end of stage 1 and its stabilization epoch. A reference, not a target.
AUTHORS = {"seeds": (0, 1, 2, 3), "stabilization": (56, 79, 92, 121),
           "last_update_loss": (0.26770, 0.28410, 0.28870, 0.28310),
           "last_update_rho": (0.692405, 0.694100, 0.698748, 0.715307),
           "figure_stage1_end": 8, "figure_stabilization": 129}

RUN_KEYS = ("stage1_end", "stabilization", "final_loss", "final_loss_paper",
            "final_spectral_radius", "last_update_loss", "last_update_rho")


def independent_runs(seeds, env, *, N: int = 100, epochs: int = 1000, T: int = 50,
                     lr: float = 1e-2, batch: int = 100, clip: float | None = 1.0,
                     convention=None, init: str = "paper", dtype=None,
                     shared_batches: int | None = None, stream: str = "authors") -> dict:
    """Rank-one closed-loop trainings, one per seed, and their stage boundaries.

    Run k draws its network (``RankOneAgent(N, seed=Stream(seeds[k], stream), init=init)``)
    and, by default, its batches from the same stream, as separate runs of the authors' code
    would (``stream='authors'``: their draws; 'package': the package's), trained side by side
    as one ensemble. With
    ``shared_batches`` (a seed) the networks train instead as one ensemble on the same batches
    drawn with that seed: one vectorized run, many times faster, whose members differ only in
    their network. ``convention`` and ``init`` choose the setup (default: the authors'); a
    ``dtype`` other than the environment's reruns it in that number format. Returns arrays
    (len(seeds),) under ``RUN_KEYS`` and ``seed``: a boundary never reached is NaN,
    ``final_loss`` is the expected loss of the final network in the run's convention and
    ``final_loss_paper`` the same network's in the authors' (states x_0..x_{T-1}), so runs of
    different conventions can be compared; ``last_update_loss`` and ``last_update_rho`` are the
    batch loss and rho(P) of the network before the last update (what the authors' code
    records last). Introduced in Chapter 2, section "Three stages".
    """
    from .agents import OverlapAgent, RankOneAgent
    from .streams import Stream
    from .conventions import PAPER_RANK_ONE
    from .coupled import check_env, expected_loss
    from .training import train_closed_loop

    seeds = _checks.seeds("seeds", seeds)
    if shared_batches is not None:
        shared_batches = _checks.integer("shared_batches", shared_batches, low=0)
    check_env(env)
    if dtype is not None:
        env = env.to(dtype)
    train = dict(epochs=epochs, T=T, lr=lr, batch=batch, clip=clip, convention=convention,
                 eig_W=False)
    runs = [Stream(s, stream) for s in seeds]
    draw = lambda st: RankOneAgent(N=N, seed=st, init=init, dtype=env.dtype, device=env.device)
    # one ensemble either way: on per-member streams each member is its run alone to rounding
    # (measured over 1000 epochs at seeds 0-3: losses within 5e-14 relative), 3 times faster
    h = train_closed_loop(RankOneAgent.stack([draw(st) for st in runs]), env,
                          seed=[st.copy() for st in runs] if shared_batches is None
                          else shared_batches, **train)
    histories = [h.member(k) for k in range(len(seeds))]
    out = {k: [] for k in ("seed",) + RUN_KEYS}
    for s, h in zip(seeds, histories):
        st = detect_stages(h)
        final = OverlapAgent(torch.as_tensor(h.overlaps[-1]), dtype=env.dtype)
        with torch.no_grad():
            paper = expected_loss(final, env, T, window=PAPER_RANK_ONE.window).item()
        last = len(h.epoch) - 2  # the epoch of the last update (the authors' last record)
        for k, v in (("seed", s), ("stage1_end", st.stage1_end),
                     ("stabilization", st.stabilization), ("final_loss", h.expected_loss[-1]),
                     ("final_loss_paper", paper),
                     ("final_spectral_radius", h.spectral_radius[-1]),
                     ("last_update_loss", h.loss[last] if last >= 0 else np.nan),
                     ("last_update_rho", h.spectral_radius[last] if last >= 0 else np.nan)):
            out[k].append(np.nan if v is None else float(v))
    return {k: np.array(v, dtype=int if k == "seed" else float) for k, v in out.items()}


def epoch_percentile(values, q: float) -> float:
    """The ``q``-th percentile (linear, as ``np.percentile``) of epochs at which runs reached a
    boundary, a run that never did (NaN) counting as later than every epoch: NaN only where
    the percentile lands among those runs. (``np.percentile`` gives NaN if any run is NaN.)
    Introduced in Chapter 2, section "Three stages"."""
    v = np.asarray(values, dtype=float)
    latest = np.nanmax(v, initial=-np.inf)
    # a never-run as a number beyond every epoch (not inf: 0 * inf in the interpolation is NaN)
    p = float(np.percentile(np.where(np.isnan(v), np.finfo(float).max / 2, v), q))
    return p if p <= latest else math.nan


def median_of_n(values, n: int, q=(5.0, 95.0)) -> np.ndarray:
    """Percentiles ``q`` of the median of ``n`` runs drawn from the runs ``values``.

    How far the median of a few runs (``n`` odd) can land from that of many: the median of n
    independent draws from the empirical distribution of ``values`` is at most x with
    probability P(Binomial(n, F(x)) >= (n + 1) / 2), F the empirical CDF; the percentiles
    are read off that exact distribution (no resampling). NaN values (runs that never
    reached the boundary) count as larger than every number. Introduced in Chapter 2,
    section "Three stages".
    """
    from scipy.stats import binom

    n = _checks.integer("n", n, low=1)
    if n % 2 == 0:
        raise ValueError(f"n must be odd (a median of one run), got {n}")
    v = np.asarray(values, dtype=float).ravel()
    if v.size == 0:
        raise ValueError("values must hold at least one run")
    q = np.atleast_1d(np.asarray(q, dtype=float))
    if not np.all((q >= 0) & (q <= 100)):
        raise ValueError(f"q must be percentiles in [0, 100], got {q.tolist()}")
    xs = np.unique(v[~np.isnan(v)])
    if xs.size == 0:  # no run reached it: every percentile lies beyond the runs
        return np.full(q.shape, np.nan)
    F = np.searchsorted(np.sort(np.where(np.isnan(v), np.inf, v)), xs, side="right") / v.size
    cdf = binom.sf((n + 1) // 2 - 1, n, F)  # P(at least (n + 1) / 2 of n draws are <= x)
    idx = np.searchsorted(cdf, q / 100 - 1e-12, side="left")
    return np.where(idx < xs.size, xs[np.minimum(idx, xs.size - 1)], np.nan)


def member_stages(history) -> list[Stages]:
    """``detect_stages`` of every member of an ensemble history, in member order.

    Introduced in Chapter 2, section "Stage 1" (the s_zm(0) sweep).
    """
    arrays = getattr(history, "arrays", None)
    loss = arrays.get("loss") if isinstance(arrays, dict) else None
    if loss is None or np.ndim(loss) < 2:
        raise ValueError("member_stages needs an ensemble history (per-member arrays); use "
                         "detect_stages for a single run")
    return [detect_stages(history.member(k)) for k in range(loss.shape[1])]


def batch_losses(agent, env, T: int, n_batches: int, batch: int, seed: int) -> np.ndarray:
    """Losses (n_batches,) of ``n_batches`` random batches of ``batch`` initial states each
    (drawn at once with ``seed``) for the (single) linear ``agent``, as training samples them.

    Their mean estimates ``coupled.expected_loss``; their spread is the sampling noise of
    the gradient's loss. Introduced in Chapter 2, section "Sampled and exact loss".
    """
    from .agents import make_generator
    from .coupled import closed_loop_loss

    n_batches = _checks.integer("n_batches", n_batches, low=1)
    batch = _checks.integer("batch", batch, low=1)
    x0 = env.sample_x0(n_batches * batch, make_generator(seed)).reshape(n_batches, batch, 2)
    with torch.no_grad():
        return closed_loop_loss(agent, env, x0, T).cpu().numpy()
