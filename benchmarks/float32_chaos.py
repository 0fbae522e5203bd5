"""How far float32's last bits move the authors' tanh teacher after its 1000 epochs: the
float32 reference test (``tests/test_authors_stream.py``, the epoch-1000 loss against the
authors' printed value, rel 1e-3) set beside the deviations that one ulp of one initial weight,
or another order of the gradient's sum over steps, make.

    python -m benchmarks.float32_chaos            # seeds 0 and 1, 1000 epochs (about 1 min)

Each run is the authors' float32 teacher (``Stream(s, 'authors')``, beta = 0.005, T = 50),
trained as Chapter 1 trains it, with one change. Prints a Markdown table of each run's
relative deviation from the unchanged run and from the authors' value, and writes it to
``_build/bench/float32_chaos.md``.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import torch

from closedloop import DoubleIntegrator, RNNAgent, UniformBox, _loop
from closedloop._threads import single_thread
from closedloop.streams import Stream
from closedloop.training import train_closed_loop

ROOT = Path(__file__).resolve().parents[1]
SUM = _loop.sum_over_steps  # the package's, which the variants below replace


def _numpy_sum(prev, G, batched):
    d = G.shape[-1]
    f = lambda a, b: torch.from_numpy(a.reshape(-1, d).numpy().T @ b.reshape(-1, d).numpy())  # noqa: E731
    return torch.stack([f(prev[:, k], G[:, k]) for k in range(G.shape[1])]) if batched \
        else f(prev, G)


def _stepwise_sum(prev, G, batched):
    return sum(SUM(prev[t:t + 1], G[t:t + 1], batched)
               for t in range(prev.shape[0]))


def _float64_sum(prev, G, batched):
    return SUM(prev.double(), G.double(), batched).to(G.dtype)


def _one_ulp_up(agent):
    W = agent.tensors["W"]
    with torch.no_grad():
        W[0, 0] = torch.nextafter(W[0, 0], torch.tensor(np.inf, dtype=W.dtype))


VARIANTS = {  # name: (sum over steps, change to the initial network)
    "today's code, run again": (None, None),
    "W[0, 0] one float32 ulp up at the start": (None, _one_ulp_up),
    "the sum over steps in numpy (OpenBLAS)": (_numpy_sum, None),
    "the sum over steps accumulated step by step": (_stepwise_sum, None),
    "the sum over steps in float64, then rounded": (_float64_sum, None),
}


def final_loss(seed: int, epochs: int = 1000, sum_over_steps=None, change=None,
               N: int = 100) -> float:
    """The float32 authors' teacher's training loss at epoch ``epochs`` (the row the reference
    test reads: epoch 0 makes no update, so the network before the last update), with
    ``sum_over_steps`` in place of ``_loop.sum_over_steps`` and ``change(agent)`` applied to
    the initial network."""
    env = DoubleIntegrator(UniformBox(1.0), dtype=torch.float32)
    stream = Stream(seed, "authors")
    agent = RNNAgent(N=N, seed=stream, dtype=torch.float32)
    if change is not None:
        change(agent)
    _loop.sum_over_steps = sum_over_steps or SUM
    try:
        with single_thread():
            h = train_closed_loop(agent, env, epochs=epochs, T=50, beta=0.005, seed=stream,
                                  eig_every=0, eig_W=False)
    finally:
        _loop.sum_over_steps = SUM
    return float(h.loss[epochs])


def authors_values() -> dict:
    """The authors' printed epoch-1000 losses by seed, from the reference test's table."""
    spec = importlib.util.spec_from_file_location(
        "authors_stream", ROOT / "tests" / "test_authors_stream.py")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(ROOT / "tests"))  # its conftest helpers
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(ROOT / "tests"))
    return {s: float(row[3][4]) for s, row in module.TANH.items()}


def table(seeds=(0, 1), epochs: int = 1000, N: int = 100, authors: dict | None = None) -> str:
    """The Markdown table: one row per variant, per seed its deviation from today's code and
    (where ``authors`` gives a value) from the authors'."""
    base = {s: final_loss(s, epochs, N=N) for s in seeds}
    head = "| variant | " + " | ".join(
        f"seed {s}: vs today's" + (" | vs the authors'" if authors and s in authors else "")
        for s in seeds) + " |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for name, (sums, change) in VARIANTS.items():
        cells = []
        for s in seeds:
            got = final_loss(s, epochs, sums, change, N)  # today's code again: 0 if reproducible
            cells.append(f"{abs(got / base[s] - 1):.1e}")
            if authors and s in authors:
                cells.append(f"{abs(got / authors[s] - 1):.1e}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main():
    text = ("Relative deviation of the float32 authors' teacher's loss after 1000 epochs "
            "(the reference test allows 1e-3 against the authors' value)\n\n"
            + table(authors=authors_values()))
    out = ROOT / "_build" / "bench"
    out.mkdir(parents=True, exist_ok=True)
    (out / "float32_chaos.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
