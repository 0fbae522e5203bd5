"""Argument checks shared by the package: every public entry point validates here so a bad
value fails with the parameter's name and allowed range, not deep inside torch."""

from __future__ import annotations

import functools
import math
import numbers
import os
import reprlib

import numpy as np
import torch

FLOAT_DTYPES = (torch.float64, torch.float32)


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
    try:
        as_float = float(value)
    except OverflowError:  # an int beyond the float range
        as_float = math.inf
    if not math.isfinite(as_float):
        raise ValueError(f"{name} must be finite, got {short(value)}")
    value = as_float
    _range(name, value, low, high, low_open, high_open)
    return value


def choice(name: str, value, allowed) -> str:
    try:  # an array or tensor compared with the allowed values raises, or is ambiguous
        ok = (not isinstance(value, (bool, np.bool_, np.ndarray, torch.Tensor))
              and bool(value in allowed))
    except (TypeError, ValueError, RuntimeError):
        ok = False
    if not ok:
        raise ValueError(f"{name} must be one of {sorted(allowed)}, got {short(value)}")
    return value


def finite_tensor(name: str, value: torch.Tensor, dtype: torch.dtype | None = None
                  ) -> torch.Tensor:
    """``value`` itself, checked: a tensor (of ``dtype`` if given, else of a real floating
    dtype) with no NaN or inf."""
    if not torch.is_tensor(value):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if dtype is not None and value.dtype != dtype:
        raise TypeError(f"{name} must have dtype {dtype}, got {value.dtype}")
    if value.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name} must have a real floating dtype {FLOAT_DTYPES}, got "
                        f"{value.dtype}")
    if not torch.isfinite(value).all():
        raise ValueError(f"{name} contains NaN or inf")
    return value


def on_device(name: str, value: torch.Tensor, device) -> None:
    """ValueError if the tensor ``value`` is not on ``device`` (say which to move, not fail
    inside torch); other values pass, for the type checks that follow."""
    if torch.is_tensor(value) and value.device != torch.device(device):
        raise ValueError(f"{name} is on {value.device}, but the computation is on "
                         f"{torch.device(device)}: move it there (.to(device))")


def real_tensor(name: str, value, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """``value`` (a number, nested sequence, numpy array or tensor of real numbers) as a
    finite tensor of ``dtype``; a tensor keeps its autograd graph. Strings, booleans, complex
    numbers and ragged sequences raise TypeError, NaN and inf ValueError."""
    if torch.is_tensor(value):
        t = value
    else:
        try:
            t = torch.as_tensor(np.asarray(value))
        except (TypeError, ValueError, RuntimeError, OverflowError):
            t = None
    if t is None or t.dtype == torch.bool or t.is_complex() or not (
            t.is_floating_point() or t.dtype in (torch.int8, torch.int16, torch.int32,
                                                 torch.int64, torch.uint8)):
        raise TypeError(f"{name} must be real numbers, got {short(value)}")
    t = t.to(dtype)
    if not torch.isfinite(t).all():
        raise ValueError(f"{name} must be finite, got {short(value)}")
    return t


def int_tuple(name: str, value, *, low: int = 1) -> tuple:
    """A tuple of integers >= ``low`` (an ensemble's batch_shape, a size)."""
    if not isinstance(value, (tuple, list)):
        raise TypeError(f"{name} must be a tuple of integers, got {short(value)}")
    return tuple(integer(f"{name}[{i}]", v, low=low) for i, v in enumerate(value))


def seed(name: str, value) -> int:
    """A seed: an integer in torch's range [0, 2**64 - 1]."""
    return integer(name, value, low=0, high=2**64 - 1)


def members(name: str, value, shape: tuple, check):
    """One setting for every member, or one value per member of an ensemble of ``shape``.

    A list, tuple, array or tensor with at least one axis is per member: it must have
    ``shape`` and comes back as a flat list of ``check(f"{name}[i]", v)``. Anything else is one
    value and comes back as ``check(name, value)``. ``check(name, v)`` validates one value
    and returns it (e.g. ``integer`` with bounds bound in).
    """
    if torch.is_tensor(value) or isinstance(value, np.ndarray):
        got, items = tuple(value.shape), value.reshape(-1).tolist()
    elif isinstance(value, (list, tuple)):
        got, items = (len(value),), list(value)
    else:
        return check(name, value)
    if not got:  # a 0-d array or tensor: one value
        return check(name, items[0])
    if got != tuple(shape):
        raise ValueError(f"{name} with one value per member must have the ensemble's shape "
                         f"{tuple(shape) or '(none here: one network)'}, got {got}")
    return [check(f"{name}[{i}]", v) for i, v in enumerate(items)]


def seeds(name: str, value) -> tuple:
    """A non-empty sequence of distinct seeds (integers >= 0) -> a tuple of ints."""
    if isinstance(value, (int, str, bytes)) or not hasattr(value, "__len__"):
        raise TypeError(f"{name} must be a sequence of seeds, got {short(value)}")
    out = tuple(seed(f"{name}[{i}]", s) for i, s in enumerate(value))
    if not out or len(set(out)) != len(out):
        raise ValueError(f"{name} must be distinct and at least one, got {out}")
    return out


def float_dtype(name: str, value) -> torch.dtype:
    """A floating dtype of ``FLOAT_DTYPES``, given as itself or by name ('float32')."""
    if isinstance(value, str) and value in {str(d).removeprefix("torch.") for d in FLOAT_DTYPES}:
        value = getattr(torch, value)
    if not isinstance(value, torch.dtype) or value not in FLOAT_DTYPES:
        raise TypeError(f"{name} must be one of {FLOAT_DTYPES}, got {short(value)}")
    return value


def fits_memory(what: str, n_elements: int, itemsize: int = 8) -> None:
    """Raise ValueError if ``n_elements`` items of ``itemsize`` bytes exceed this machine's
    physical memory: a clear error, naming the parameters in ``what``, instead of an
    allocator failure deep inside torch or minutes of swapping."""
    total = _physical_memory()
    need = int(n_elements) * itemsize
    if total is not None and need > total:
        raise ValueError(f"{what}: that needs {need / 2**30:.3g} GiB, more than this "
                         f"machine's {total / 2**30:.3g} GiB of memory")


@functools.cache  # read once: a training's every draw checks its size against it
def _physical_memory() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # not POSIX: no guard
        return None


def short(value) -> str:
    """A repr short enough for an error message (arrays and long strings are cut)."""
    return reprlib.repr(value)


def instance(name: str, value, kind: type) -> None:
    """TypeError unless ``value`` is a ``kind`` (the error names the parameter)."""
    if not isinstance(value, kind):
        raise TypeError(f"{name} must be a {kind.__name__}, got {short(value)}")


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


def broadcast_shapes(*shapes) -> tuple:
    """The broadcast of ``shapes`` (as numpy's; ValueError if they do not broadcast).
    torch.broadcast_shapes imports sympy on its first call, 0.3-0.8 s of every process."""
    return tuple(np.broadcast_shapes(*(tuple(s) for s in shapes)))
