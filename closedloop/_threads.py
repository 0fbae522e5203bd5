"""Thread count for step-by-step loops of small matrices."""

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
    Large single products (the gradient of P over all steps at once) stay outside.
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
