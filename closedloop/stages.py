"""Where the stages of closed-loop learning begin and end, read off a training history."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


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
    stabilization: rho(P) < 1 from there on (the first epoch after which the coupled system,
    linearized at the target for tanh networks, stays stable).
    Introduced in Chapter 2, section "Three stages"; used for tanh networks in Chapter 1.
    """
    arrays = getattr(history, "arrays", None)
    if not isinstance(arrays, dict):
        raise TypeError(f"history must be a training History, got {type(history).__name__}")
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
