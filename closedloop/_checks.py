"""Argument checks shared by the package: every public entry point validates here so a bad
value fails with the parameter's name and allowed range, not deep inside torch."""

from __future__ import annotations

import math
import numbers

import torch


def integer(name: str, value, *, low: int | None = None, high: int | None = None) -> int:
    """Return ``value`` as int, or raise if it is not an integer in [low, high]."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
    value = int(value)
    _range(name, value, low, high)
    return value


def real(name: str, value, *, low: float | None = None, high: float | None = None,
         low_open: bool = False, high_open: bool = False) -> float:
    """Return ``value`` as a finite float in the given range, or raise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r} ({type(value).__name__})")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    _range(name, value, low, high, low_open, high_open)
    return value


def choice(name: str, value, allowed) -> str:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {sorted(allowed)}, got {value!r}")
    return value


def finite_tensor(name: str, value: torch.Tensor) -> torch.Tensor:
    if not torch.is_tensor(value):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if not torch.isfinite(value).all():
        raise ValueError(f"{name} contains NaN or inf")
    return value


def shape(name: str, value: torch.Tensor, expected: tuple) -> None:
    """Check ``value.shape`` against ``expected`` (None entries match any size)."""
    ok = value.dim() == len(expected) and all(
        e is None or e == s for e, s in zip(expected, value.shape))
    if not ok:
        want = "(" + ", ".join("*" if e is None else str(e) for e in expected) + ")"
        raise ValueError(f"{name} must have shape {want}, got {tuple(value.shape)}")


def _range(name, value, low, high, low_open=False, high_open=False):
    if low is not None and (value < low or (low_open and value == low)):
        raise ValueError(f"{name} must be {'>' if low_open else '>='} {low}{_hi(high, high_open)}"
                         f", got {value!r}")
    if high is not None and (value > high or (high_open and value == high)):
        raise ValueError(f"{name} must be {'<' if high_open else '<='} {high}, got {value!r}")


def _hi(high, high_open):
    return "" if high is None else f" and {'<' if high_open else '<='} {high}"
