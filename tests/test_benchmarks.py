"""The benchmark's plain loops compute the same losses and gradients as the fast paths."""

import pytest
import torch

from benchmarks import cases


@pytest.mark.parametrize("kind", ["rank_one", "tanh", "tracking"])
def test_plain_and_fast_epochs_agree(kind, monkeypatch):
    grads = {}
    real = torch.autograd.grad

    def spy(loss, params):
        out = real(loss, params)
        grads.setdefault("loss", []).append(loss.detach())
        grads.setdefault("g", []).append(out)
        return out

    monkeypatch.setattr(torch.autograd, "grad", spy)
    plain, fast = (cases.tracking_pair(N=12, batch=6) if kind == "tracking"
                   else cases.epoch_pair(kind, N=16, T=20, batch=8))
    plain(), fast()
    torch.testing.assert_close(grads["loss"][0], grads["loss"][1], rtol=1e-10, atol=0)
    for a, b in zip(*grads["g"]):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-12)


def test_the_rank_one_paths_give_the_same_gradient(monkeypatch):
    """The three ways of computing a linear closed loop that the benchmark compares."""
    grads = []
    real = torch.autograd.grad
    monkeypatch.setattr(torch.autograd, "grad", lambda loss, params: grads.append(
        (loss.detach(), real(loss, params))) or grads[-1][1])
    for path in cases.rank_one_paths(N=16, T=20, batch=8).values():
        path()
    assert len(grads) == 3
    for loss, g in grads[1:]:
        torch.testing.assert_close(loss, grads[0][0], rtol=1e-10, atol=0)
        for a, b in zip(g, grads[0][1]):
            torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-12)


def test_float32_chaos_table_is_measured():
    """The study's runs at a few epochs: today's code run again deviates 0 from its first run
    (a run is reproducible), the table reads the authors' values from the reference test, and
    a variant is a real change (the float64 sum moves the loss within a few epochs)."""
    from benchmarks import float32_chaos as fc

    assert set(fc.authors_values()) == {0, 1}
    text = fc.table(seeds=(0,), epochs=30, N=20, authors={0: 1.0})
    rows = {line.split(" | ")[0].strip("| "): line for line in text.splitlines()[2:]}
    assert set(rows) == set(fc.VARIANTS)
    assert rows["today's code, run again"].split(" | ")[1] == "0.0e+00"
    moved = [name for name, line in rows.items() if float(line.split(" | ")[1]) > 0]
    assert "the sum over steps in float64, then rounded" in moved
