"""Thread count for step-by-step loops: one thread for small products, the default for large."""

from __future__ import annotations

import contextlib

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
    n = torch.get_num_threads()
    if n == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


# Multiply-adds per product from which a step loop keeps torch's threads. Measured on 2 cores
# (float64, B = 100 rows): d = 100 gains 1.3x from a second thread, d = 200 1.7x, d = 400
# 1.65x; a product of 4e6 (d ~ 200) takes ~0.2 ms, long enough that a thread delayed by
# another process costs a fraction of it rather than many times it.
PARALLEL_WORK = 4_000_000


def loop_threads(work: int):
    """The thread setting for a loop of products of ``work`` multiply-adds each:
    ``single_thread()`` below ``PARALLEL_WORK``, torch's default threads from there on."""
    return single_thread() if work < PARALLEL_WORK else contextlib.nullcontext()
