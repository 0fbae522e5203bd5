"""Linear plants beyond the double integrator: any discrete-time single-input single-output
linear system driven by an RNN controller (issue 28, the package's foundation).

    x_{t+1} = A x_t + B u_t + w_t,    y_t = C x_t,    w_t ~ N(0, noise^2 I_n) i.i.d.,

with n states, one control u and one observed output y. Time is in steps; ``dt`` of a
constructor is the sampling interval of the continuous-time system it discretizes (in the
continuous system's time units). Shapes as in ``envs``: states are row vectors x (..., B, n),
controls u (..., B), outputs y (..., B); A (n, n), B (n,), C (n,).

``LinearPlant.double_integrator()`` has the matrices of ``envs.DoubleIntegrator`` (paper s.1)
and trains to the same bits. ``coupled`` and ``training.train_closed_loop`` take any plant
(n states, process noise included; the state cost is the mean over the n coordinates), and
``sweep.run`` trains grids over a plant family's parameters. The theory for any plant (the
coupled matrix P, the rank-one reduction P_eff, its characteristic polynomial, the stage-1
and stage-2 closed forms, the exact expected loss with process noise) is ``plant_theory``.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg
import torch

from . import _checks
from .envs import DTYPE, UniformBox


class Box:
    """Initial states x_0 ~ U([-w_1, w_1] x ... x [-w_n, w_n]): the n-dimensional
    ``envs.UniformBox``.

    ``half_width``: a number (the same on every axis, then ``n`` is required) or a sequence of
    n numbers (state units). The paper's linear theory uses 2.0 on both axes.
    """

    def __init__(self, half_width=2.0, n: int | None = None):
        if isinstance(half_width, (list, tuple, np.ndarray, torch.Tensor)):
            widths = list(np.asarray(half_width, dtype=object).ravel())
            if n is not None and _checks.integer("n", n, low=1) != len(widths):
                raise ValueError(f"half_width has {len(widths)} entries but n = {n}")
            if not widths:
                raise ValueError("half_width must have at least one entry")
        else:
            if n is None:
                raise ValueError("n (the number of states) is required when half_width is a "
                                 "single number")
            widths = [half_width] * _checks.integer("n", n, low=1)
        # the bounds keep E[x_0 x_0^T] = w^2/3 finite and positive in float64 (as UniformBox)
        self.half_width = tuple(_checks.real(f"half_width[{i}]", w, low=1e-150, high=1e150)
                                for i, w in enumerate(widths))

    @property
    def n(self) -> int:
        return len(self.half_width)

    def sample(self, batch: int, generator: torch.Generator, dtype=DTYPE, device="cpu"):
        """``batch`` initial states, (batch, n), drawn on the generator's device."""
        batch = _checks.integer("batch", batch, low=1)
        dtype = _checks.float_dtype("dtype", dtype)
        _checks.instance("generator", generator, torch.Generator)
        w = torch.tensor(self.half_width, dtype=dtype, device=generator.device)
        r = torch.rand(batch, self.n, generator=generator, dtype=dtype, device=generator.device)
        return ((2 * r - 1) * w).to(device)

    def second_moment(self, dtype=DTYPE, device="cpu") -> torch.Tensor:
        """E[x_0 x_0^T] = diag(w^2 / 3), (n, n)."""
        w = torch.tensor(self.half_width, dtype=dtype, device=device)
        return torch.diag(w ** 2 / 3)

    def factor(self, dtype=DTYPE, device="cpu") -> torch.Tensor:
        """F (n, n) with F^T F = E[x_0 x_0^T]: the expected cost of a linear loop is the sum
        of the costs from the rows of F (``coupled``'s exact loss mode)."""
        # the Cholesky factor of a diagonal matrix, sqrt of its diagonal, written out: the
        # same bits without a LAPACK call, which took 5 ms on two threads beside a busy
        # process (every training reads it once, outside its thread policy)
        return torch.diag(torch.diagonal(self.second_moment(dtype, device)).sqrt())

    def __repr__(self):
        return f"Box(half_width={self.half_width})"


class LinearPlant:
    """x_{t+1} = A x_t + B u_t + w_t, y_t = C x_t (module docstring).

    ``A`` (n, n), ``B`` (n,) or (n, 1), ``C`` (n,) or (1, n): real, finite. ``x0``: the
    initial-state box, a ``Box``, an ``envs.UniformBox`` (n = 2), a number or n numbers
    (half-widths; default 2.0 on every axis, the paper's theory). ``noise``: the standard
    deviation sigma >= 0 of the process noise w_t (state units per step). ``minimal``: refuse
    an (A, B, C) that fails the Kalman rank conditions (default), since an uncontrollable or
    unobservable mode of A is an eigenvalue of the coupled matrix P for *every* RNN
    controller: no training can move it (``plant_theory``'s formulas hold regardless; pass
    ``minimal=False`` to study such a plant).
    """

    def __init__(self, A, B, C, x0=None, noise: float = 0.0, minimal: bool = True,
                 dtype=DTYPE, device="cpu"):
        dtype = _checks.float_dtype("dtype", dtype)
        A = _checks.real_tensor("A", A, torch.float64)
        if A.dim() != 2 or A.shape[0] != A.shape[1] or A.shape[0] < 1:
            raise ValueError(f"A must be a square matrix (n, n) with n >= 1, got shape "
                             f"{tuple(A.shape)}")
        n = A.shape[0]
        B = _checks.real_tensor("B", B, torch.float64)
        if tuple(B.shape) not in ((n,), (n, 1)):
            raise ValueError(f"B must have shape ({n},) or ({n}, 1) (one control, n = {n} "
                             f"states as A), got {tuple(B.shape)}")
        C = _checks.real_tensor("C", C, torch.float64)
        if tuple(C.shape) not in ((n,), (1, n)):
            raise ValueError(f"C must have shape ({n},) or (1, {n}) (one output, n = {n} "
                             f"states as A), got {tuple(C.shape)}")
        self.noise = _checks.real("noise", noise, low=0.0)
        if not isinstance(minimal, (bool, np.bool_)):
            raise TypeError(f"minimal must be True or False, got {_checks.short(minimal)}")
        kw = dict(dtype=dtype, device=device)
        self.dtype, self.device = dtype, torch.device(device)
        self.A, self.B, self.C = A.to(**kw), B.reshape(n).to(**kw), C.reshape(n).to(**kw)
        self.x0 = _as_box(x0, n)
        if minimal:
            self.require_minimal()

    n_state = property(lambda self: self.A.shape[0], doc="n, the number of states")

    def to(self, dtype) -> "LinearPlant":
        """The same plant (its noise and initial states too) with its matrices, samples and
        computations in ``dtype`` (itself if it is in ``dtype`` already)."""
        dtype = _checks.float_dtype("dtype", dtype)
        if dtype == self.dtype:
            return self
        return LinearPlant(self.A, self.B, self.C, self.x0, self.noise, minimal=False,
                           dtype=dtype, device=self.device)

    # constructors --------------------------------------------------------------------------
    @classmethod
    def double_integrator(cls, **kw) -> "LinearPlant":
        """The paper's plant (s.1): A = [[1, 1], [0, 1]], B = [0, 1], C = [1, 0]."""
        return cls.integrator(2, **kw)

    @classmethod
    def integrator(cls, k: int, dt: float = 1.0, **kw) -> "LinearPlant":
        """A chain of k integrators by forward Euler: x_i += dt x_{i+1} (i < k), x_k += dt u;
        the output is x_1. k = 2, dt = 1 is the paper's double integrator; k = 1 is
        x' = x + dt u, y = x (C B = dt, not 0). Other keywords go to ``LinearPlant``."""
        k = _checks.integer("k", k, low=1)
        dt = _checks.real("dt", dt, low=0.0, low_open=True)
        A = np.eye(k) + dt * np.eye(k, k=1)
        B = np.zeros(k)
        B[-1] = dt
        return cls(A, B, np.eye(k)[0], **kw)

    @classmethod
    def damped_oscillator(cls, omega: float, zeta: float, dt: float, **kw) -> "LinearPlant":
        """A mass on a spring, d^2p/dt^2 = -omega^2 p - 2 zeta omega dp/dt + u, state
        (p, dp/dt), output p, discretized exactly for a control held over each step (zero-order
        hold: [[A, B], [0, 1]] = expm(dt [[A_c, B_c], [0, 0]])).

        ``omega`` > 0 natural frequency (rad per time unit), ``zeta`` in [0, 1) damping ratio
        (lightly damped: small), ``dt`` > 0 step. At omega_d dt = k pi (omega_d =
        omega sqrt(1 - zeta^2)) sampling hides the oscillation and the plant is not minimal.
        """
        omega = _checks.real("omega", omega, low=0.0, low_open=True)
        zeta = _checks.real("zeta", zeta, low=0.0, high=1.0, high_open=True)
        dt = _checks.real("dt", dt, low=0.0, low_open=True)
        Ac, Bc = continuous_oscillator(omega, zeta)
        aug = np.zeros((3, 3))
        aug[:2, :2], aug[:2, 2] = Ac, Bc
        E = scipy.linalg.expm(dt * aug)
        return cls(E[:2, :2], E[:2, 2], [1.0, 0.0], **kw)

    @classmethod
    def unstable(cls, a: float, **kw) -> "LinearPlant":
        """The first-order unstable plant x' = a x + u, y = x, with |a| > 1."""
        a = _checks.real("a", a)
        if abs(a) <= 1:
            raise ValueError(f"a must satisfy |a| > 1 (an unstable plant), got {a!r}")
        return cls([[a]], [1.0], [1.0], **kw)

    # the Kalman rank conditions ------------------------------------------------------------
    def controllability_matrix(self) -> np.ndarray:
        """[B, A B, ..., A^{n-1} B], (n, n) float64."""
        A, B = self.numpy()[:2]
        cols = [B]
        for _ in range(self.n_state - 1):
            cols.append(A @ cols[-1])
        return np.stack(cols, 1)

    def observability_matrix(self) -> np.ndarray:
        """[C; C A; ...; C A^{n-1}], (n, n) float64."""
        A, _, C = self.numpy()
        rows = [C]
        for _ in range(self.n_state - 1):
            rows.append(rows[-1] @ A)
        return np.stack(rows, 0)

    @property
    def controllable(self) -> bool:
        return _full_rank(self.controllability_matrix())

    @property
    def observable(self) -> bool:
        return _full_rank(self.observability_matrix())

    def require_minimal(self) -> None:
        """ValueError unless (A, B) is controllable and (A, C) observable (Kalman ranks n)."""
        for what, M, pair in (("controllable", self.controllability_matrix(), "(A, B)"),
                              ("observable", self.observability_matrix(), "(A, C)")):
            r = np.linalg.matrix_rank(M)
            if r < self.n_state:
                raise ValueError(f"{pair} is not {what}: its Kalman matrix has rank {r} < n = "
                                 f"{self.n_state}; a mode of A that the RNN cannot "
                                 f"{'move' if what == 'controllable' else 'see'} stays an "
                                 f"eigenvalue of the closed loop (pass minimal=False to "
                                 f"allow it)")

    # the transfer function G(lambda) = C (lambda - A)^{-1} B = b(lambda) / a(lambda) ----------
    def transfer_polynomials(self) -> tuple[np.ndarray, np.ndarray]:
        """(a, b): coefficients, highest power first, of a(lambda) = det(lambda I - A) (n + 1,
        monic) and b(lambda) = C adj(lambda I - A) B (n + 1, leading 0), with G = b / a.

        b from the Markov parameters h_k = C A^{k-1} B: b_k = sum_{i<k} a_i h_{k-i}.
        """
        A, _, _ = self.numpy()
        a = np.real(np.poly(A)) if self.n_state > 1 else np.array([1.0, -A[0, 0]])
        h = np.concatenate([[0.0], self.observability_matrix() @ self.numpy()[1]])  # h[k]
        b = np.array([sum(a[i] * h[k - i] for i in range(k)) for k in range(self.n_state + 1)])
        return a, b

    # stepping ------------------------------------------------------------------------------
    def step(self, x: torch.Tensor, u: torch.Tensor, w: torch.Tensor | None = None):
        """One step: x (..., n), u (...), noise w (..., n) or None (none) -> x' (..., n)."""
        n = self.n_state
        _checks.finite_tensor("x", x, self.dtype)
        _checks.finite_tensor("u", u, self.dtype)
        _checks.shape("x", x, tuple(u.shape) + (n,))
        out = x @ self.A.T + u[..., None] * self.B
        if w is not None:
            _checks.finite_tensor("w", w, self.dtype)
            _checks.shape("w", w, tuple(x.shape))
            out = out + w
        return out

    def observe(self, x: torch.Tensor) -> torch.Tensor:
        """y = C x: (..., n) -> (...)."""
        _checks.finite_tensor("x", x, self.dtype)
        _checks.shape("x", x, tuple(x.shape[:-1]) + (self.n_state,))
        return x @ self.C

    def sample_noise(self, T: int, batch: int, generator: torch.Generator) -> torch.Tensor:
        """w_0..w_{T-1}, (T, batch, n): N(0, noise^2) entries (zeros for a noise-free plant)."""
        T = _checks.integer("T", T, low=1)
        batch = _checks.integer("batch", batch, low=1)
        _checks.instance("generator", generator, torch.Generator)
        w = torch.randn(T, batch, self.n_state, generator=generator, dtype=self.dtype,
                        device=generator.device)
        return (self.noise * w).to(self.device)

    def sample_x0(self, batch: int, generator: torch.Generator) -> torch.Tensor:
        return self.x0.sample(batch, generator, self.dtype, self.device)

    def x0_factor(self) -> torch.Tensor:
        return self.x0.factor(self.dtype, self.device)

    def with_noise(self, noise: float) -> "LinearPlant":
        """The same plant (matrices, x0 box, dtype, device) with process noise ``noise``."""
        return LinearPlant(self.A, self.B, self.C, self.x0, noise, minimal=False,
                           dtype=self.dtype, device=self.device)

    def spec(self) -> dict:
        """The plant as plain numbers (JSON, a sweep's point): {'A', 'B', 'C' (nested lists,
        float64, exact), 'x0' (the box's half-widths), 'noise'}; ``from_spec`` rebuilds it."""
        A, B, C = self.numpy()
        return {"A": A.tolist(), "B": B.tolist(), "C": C.tolist(),
                "x0": list(self.x0.half_width), "noise": self.noise}

    @classmethod
    def from_spec(cls, spec: dict, **kw) -> "LinearPlant":
        """The plant of ``spec()`` (not checked for minimality again unless ``minimal=True``)."""
        if not isinstance(spec, dict) or set(spec) != {"A", "B", "C", "x0", "noise"}:
            raise ValueError(f"spec must be a dict with keys A, B, C, x0, noise (as "
                             f"LinearPlant.spec() gives), got {_checks.short(spec)}")
        return cls(spec["A"], spec["B"], spec["C"], spec["x0"], spec["noise"],
                   **{"minimal": False, **kw})

    def numpy(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(A, B, C) as float64 numpy arrays: (n, n), (n,), (n,)."""
        return tuple(t.detach().cpu().to(torch.float64).numpy() for t in (self.A, self.B,
                                                                          self.C))

    def __repr__(self):
        A, B, C = (v.tolist() for v in self.numpy())
        return (f"LinearPlant(n={self.n_state}, noise={self.noise}, x0={self.x0}, A={A}, "
                f"B={B}, C={C})")


#: The named plant families and their parameters: the required ones, then the optional ones
#: with their defaults (``from_family``; the plant settings of ``sweep``).
FAMILIES = {
    "double_integrator": ((), {}),
    "integrator": (("order",), {"dt": 1.0}),
    "damped_oscillator": (("omega", "zeta", "dt"), {}),
    "unstable": (("a",), {}),
}
FAMILY_PARAMETERS = ("order", "omega", "zeta", "dt", "a")


def from_family(family: str, x0=None, noise: float = 0.0, **params) -> LinearPlant:
    """The plant of a named family (``FAMILIES``) from its parameters, e.g.
    ``from_family('damped_oscillator', omega=0.5, zeta=0.1, dt=1.0, noise=0.05)``.

    ``order`` is the integrator chain's k (``LinearPlant.integrator``). A parameter given
    as None counts as not given; a required one missing, or one that the family does not
    take, is a ValueError naming it.
    """
    family = _checks.choice("plant", family, tuple(FAMILIES))
    required, optional = FAMILIES[family]
    given = {k: v for k, v in params.items() if v is not None}
    unknown = set(given) - set(required) - set(optional)
    if unknown:
        raise ValueError(f"{sorted(unknown)} are not parameters of the {family} plant (it "
                         f"takes {list(required) + list(optional) or 'none'})")
    missing = [k for k in required if k not in given]
    if missing:
        raise ValueError(f"the {family} plant needs {missing}")
    kw = {**optional, **given}
    if family == "integrator":
        kw["k"] = kw.pop("order")
    return getattr(LinearPlant, family)(**kw, x0=x0, noise=noise)


def continuous_oscillator(omega: float, zeta: float) -> tuple[np.ndarray, np.ndarray]:
    """(A_c, B_c) of d^2p/dt^2 = -omega^2 p - 2 zeta omega dp/dt + u, state (p, dp/dt)."""
    return np.array([[0.0, 1.0], [-omega ** 2, -2 * zeta * omega]]), np.array([0.0, 1.0])


def _full_rank(M: np.ndarray) -> bool:
    return np.linalg.matrix_rank(M) == M.shape[0]


def _as_box(x0, n: int) -> Box:
    if x0 is None:
        return Box(2.0, n)
    if isinstance(x0, Box):
        if x0.n != n:
            raise ValueError(f"x0 is a box in {x0.n} dimensions, the plant has n = {n} states")
        return x0
    if isinstance(x0, UniformBox):
        if n != 2:
            raise ValueError(f"x0 is a 2-d UniformBox, the plant has n = {n} states: use "
                             f"plants.Box")
        return Box(x0.half_width)
    if isinstance(x0, (list, tuple, np.ndarray, torch.Tensor)):
        return Box(x0, n)
    if isinstance(x0, (bool, np.bool_)) or not isinstance(x0, (int, float, np.number)):
        raise TypeError(f"x0 must be a Box, a UniformBox, a half-width or n half-widths, got "
                        f"{_checks.short(x0)}")
    return Box(x0, n)
