"""Thread count for step-by-step loops: one thread for small products, the default for large."""

from __future__ import annotations

import contextlib
import functools

import torch


@contextlib.contextmanager
def single_thread():
    """Run torch on one thread inside the block (or the decorated function).

    A step of a closed loop multiplies matrices of N ~ 100: a second intra-op thread saves
    a few microseconds per product when the machine is idle, but every product is a
    synchronization point, and where the cores are shared a waiting thread makes each one
    many times slower (measured on 2 cores with one other busy process: a tanh training
    epoch 184 ms with 2 threads, 72 ms with 1; the backward of a stepped tracking batch
    4 to 19 s with 2 threads, 0.09 s with 1).
    Used whole by tracking (``train_tracking``, its step loops); the tanh step loop decides
    by product size (``loop_threads``).
    """
    n, blas = torch.get_num_threads(), numpy_blas_threads()
    if n == 1 and blas in (None, 1):
        yield
        return
    torch.set_num_threads(1)
    if blas not in (None, 1):
        _openblas().limit(limits=1)
    try:
        yield
    finally:
        torch.set_num_threads(n)
        if blas not in (None, 1):
            _openblas().limit(limits=blas)


def numpy_blas_threads():
    """The thread count of numpy's OpenBLAS (which ``single_thread`` also sets to one: the
    tracking engine's products run in numpy on the CPU, ``_impulse``), None where numpy
    links another BLAS."""
    blas = _openblas()
    return None if blas is None else max(c.num_threads for c in blas.lib_controllers)


@functools.cache
def _openblas():
    """threadpoolctl's handle on the OpenBLAS libraries loaded at the first call (numpy's,
    and scipy's where scipy was imported by then; not torch's MKL, which
    ``torch.set_num_threads`` sets), or None where there is none. Cached: a scan of the
    loaded libraries takes milliseconds and every forward of a step loop asks. A library
    loaded later is not in it (scipy's products here are one-off solves, outside the loops)."""
    import numpy  # noqa: F401 (loads its BLAS)
    from threadpoolctl import ThreadpoolController

    blas = ThreadpoolController().select(internal_api="openblas")
    return blas if blas.lib_controllers else None


# Multiply-adds per product from which a step loop keeps torch's threads. Measured on 2 cores
# (float64, B = 100 rows): d = 100 gains 1.3x from a second thread, d = 200 1.7x, d = 400
# 1.65x; a product of 4e6 (d ~ 200) takes ~0.2 ms, long enough that a thread delayed by
# another process costs a fraction of it rather than many times it.
PARALLEL_WORK = 4_000_000


def numpy_steps(like: torch.Tensor) -> bool:
    """Whether a step loop on ``like``'s tensors runs on numpy views of them (``_loop``,
    ``_impulse``): on the CPU, in float32 or float64, and only where numpy's BLAS is an
    OpenBLAS that ``single_thread`` holds with torch (another BLAS would run numpy's products
    on every core while torch keeps to one)."""
    return (like.device.type == "cpu" and like.dtype in (torch.float32, torch.float64)
            and _openblas() is not None)


def loop_threads(work: int):
    """The thread setting for a loop of products of ``work`` multiply-adds each:
    ``single_thread()`` below ``PARALLEL_WORK``, torch's default threads from there on."""
    return single_thread() if work < PARALLEL_WORK else contextlib.nullcontext()
