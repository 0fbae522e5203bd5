"""The environment: a discrete double integrator observed through its position (paper s.1).

Shapes: states are row vectors, ``x`` of shape (..., batch, 2) holding (position, velocity);
controls ``u`` of shape (..., batch). Time is in steps (dt = 1).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from . import _checks

# Stage-1 losses grow like |1 + sqrt(s_zm)|^(2T): at T = 50 and s_zm(0) = 0.5 the loss is ~1e21
# and the squared gradient norm of per-member clipping ~1e46, beyond float32's 3e38 (see
# tests/test_reliability.py::test_stage1_losses_need_float64).
DTYPE = torch.float64


@dataclass(frozen=True)
class UniformBox:
    """Initial states x_0 ~ U([-w1, w1] x [-w2, w2]).

    ``half_width``: a number (same on both axes) or a pair. The paper's linear theory uses
    2.0, its nonlinear experiments 1.0. Introduced in Chapter 2, section "The setup".
    """

    half_width: float | tuple[float, float] = 2.0

    def __post_init__(self):
        hw = self.half_width
        pair = hw if isinstance(hw, (tuple, list)) else (hw, hw)
        if len(pair) != 2:
            raise ValueError(f"half_width must be a number or a pair, got {hw!r}")
        # the bounds keep E[x_0 x_0^T] = w^2/3 finite and positive (its Cholesky factor is the
        # exact loss mode's starts) in float64
        pair = tuple(_checks.real("half_width", w, low=1e-150, high=1e150) for w in pair)
        object.__setattr__(self, "half_width", pair)

    def sample(self, batch: int, generator: torch.Generator, dtype=DTYPE, device="cpu"):
        """Draw ``batch`` initial states: tensor (batch, 2) on ``device``, drawn on the
        generator's device (the package's are CPU generators: the same states everywhere)."""
        batch = _checks.integer("batch", batch, low=1)
        dtype = _checks.float_dtype("dtype", dtype)
        _checks.fits_memory(f"batch={batch} initial states", 2 * batch, dtype.itemsize)
        if not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator (see agents.make_generator), "
                            f"got {_checks.short(generator)}")
        w = torch.tensor(self.half_width, dtype=dtype, device=generator.device)
        r = torch.rand(batch, 2, generator=generator, dtype=dtype, device=generator.device)
        return ((2 * r - 1) * w).to(device)

    def second_moment(self, dtype=DTYPE, device="cpu") -> torch.Tensor:
        """E[x_0 x_0^T], (2, 2): diag(w^2 / 3) for the centred box."""
        w = torch.tensor(self.half_width, dtype=dtype, device=device)
        return torch.diag(w**2 / 3)

    def factor(self, dtype=DTYPE, device="cpu") -> torch.Tensor:
        """Rows f_i with sum_i f_i^T f_i = E[x_0 x_0^T], (2, 2).

        For a linear closed loop, E over x_0 of any quadratic cost equals the sum of the
        costs from these two deterministic starts: this is the *exact* loss mode.
        """
        # the Cholesky factor of a diagonal matrix, sqrt of its diagonal, written out: the
        # same bits without a LAPACK call, which took 5 ms on two threads beside a busy
        # process (every training reads it once, outside its thread policy)
        return torch.diag(torch.diagonal(self.second_moment(dtype, device)).sqrt())


class DoubleIntegrator:
    """x_{t+1} = A x_t + B u_t, y_t = C x_t, with A = [[1, 1], [0, 1]], B = [0, 1]^T, C = [1, 0].

    ``x0``: the initial-state distribution (default ``UniformBox(2.0)``, the paper's theory).
    ``device``: where its matrices, its samples and every computation with it live (an
    agent on another device is an error). Introduced in Chapter 2, section "The setup".
    """

    n_state = 2

    def __init__(self, x0: UniformBox | None = None, dtype=DTYPE, device="cpu"):
        self.x0 = UniformBox() if x0 is None else x0
        if not isinstance(self.x0, UniformBox):
            raise TypeError(f"x0 must be a UniformBox, got {type(self.x0).__name__}")
        dtype = _checks.float_dtype("dtype", dtype)
        kw = dict(dtype=dtype, device=device)
        self.dtype, self.device = dtype, torch.device(device)
        self.A = torch.tensor([[1.0, 1.0], [0.0, 1.0]], **kw)
        self.B = torch.tensor([0.0, 1.0], **kw)
        self.C = torch.tensor([1.0, 0.0], **kw)

    def step(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """One step: x (..., 2), u (...) -> x' (..., 2)."""
        _checks.finite_tensor("x", x, self.dtype)
        _checks.finite_tensor("u", u, self.dtype)
        _checks.shape("x", x, u.shape + (2,))
        return x @ self.A.T + u[..., None] * self.B

    def observe(self, x: torch.Tensor) -> torch.Tensor:
        """Position y = C x: (..., 2) -> (...)."""
        _checks.finite_tensor("x", x, self.dtype)
        _checks.shape("x", x, x.shape[:-1] + (2,))
        return x @ self.C

    def sample_x0(self, batch: int, generator: torch.Generator) -> torch.Tensor:
        return self.x0.sample(batch, generator, self.dtype, self.device)

    def x0_factor(self) -> torch.Tensor:
        return self.x0.factor(self.dtype, self.device)

    def to(self, dtype) -> "DoubleIntegrator":
        """The same plant with its matrices, samples and computations in ``dtype`` (itself if
        it is in ``dtype`` already)."""
        dtype = _checks.float_dtype("dtype", dtype)
        return self if dtype == self.dtype else DoubleIntegrator(self.x0, dtype, self.device)

    def __repr__(self):
        return f"DoubleIntegrator(x0={self.x0})"
