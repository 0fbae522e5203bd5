"""The controller of the tracking task: a linear continuous-time RNN (one network, or an
ensemble trained as independent runs in one computation), and the checks that a network and
a plant belong together. Introduced in Chapter 4, section "The task".
"""

from __future__ import annotations


import numpy as np
import torch

from .. import _checks, streams
from ..envs import DTYPE
from .task import PointMass, check_same_grid


class TrackingRNN:
    """Linear continuous-time RNN controller, h <- h + (dt/tau)(-h + W h + W_in in), u = W_out h.

    W ~ N(0, g^2/N) entries; W_in (N, 4), reading (x, y, r_x, r_y), and W_out (2, N)
    ~ U(-1/sqrt(N), 1/sqrt(N)) entries (the authors' draw). W and W_out are trained; W_in is
    fixed in closed-loop training and trained by the authors' open-loop twin. ``dt`` (the
    step) and ``tau`` (the time constant) in seconds; ``seed`` fixes the draw (an integer, the
    package stream, or a ``streams.Stream``).
    ``TrackingRNN.stack`` makes an ensemble: the tensors get a leading member axis
    (``batch_shape``), and ``train_tracking`` trains its members as independent runs in one
    computation; ``member(k)`` takes one out. ``device``: where its tensors live (the draw is
    made on the CPU, so a seed gives the same network everywhere). Introduced in Chapter 4,
    section "The task".
    """

    def __init__(self, N: int = 100, g: float = 0.2, dt: float = 0.1, tau: float = 1.0,
                 seed: int = 0, dtype=DTYPE, device="cpu"):
        N = _checks.integer("N", N, low=1)
        g = _checks.real("g", g, low=0.0)
        W, W_in, W_out = streams.stream(seed).tracking(N, g, dtype)
        self._set(*(x.to(device) for x in (W, W_in, W_out)), dt, tau)  # drawn on the CPU

    def _set(self, W, W_in, W_out, dt, tau):
        self.dt = _checks.real("dt", dt, low=0.0, low_open=True)
        self.tau = _checks.real("tau", tau, low=0.0, low_open=True)
        if self.dt > self.tau:  # an Euler step longer than the time constant overshoots
            raise ValueError(f"alpha = dt/tau must be <= 1, got dt={self.dt} and tau={self.tau}")
        for name, t in (("W", W), ("W_in", W_in), ("W_out", W_out)):
            _checks.finite_tensor(name, t)
        N, K = W.shape[-1], tuple(W.shape[:-2])
        if len(K) > 1:
            raise ValueError(f"W must have shape (N, N) or (members, N, N), got {tuple(W.shape)}")
        _checks.shape("W", W, K + (N, N))
        _checks.shape("W_in", W_in, K + (N, 4))
        _checks.shape("W_out", W_out, K + (2, N))
        self.W = W.detach().clone().requires_grad_(True)
        self.W_out = W_out.detach().clone().requires_grad_(True)
        self.W_in = W_in.detach().clone()

    @classmethod
    def from_tensors(cls, W, W_in, W_out, dt: float = 0.1, tau: float = 1.0) -> "TrackingRNN":
        obj = cls.__new__(cls)
        # tensors keep their floating format (a float32 network copies as float32)
        dtype = W.dtype if torch.is_tensor(W) and W.is_floating_point() else DTYPE
        obj._set(*(torch.as_tensor(x, dtype=dtype) for x in (W, W_in, W_out)), dt, tau)
        return obj

    def copy(self) -> "TrackingRNN":
        return self.from_tensors(self.W, self.W_in, self.W_out, self.dt, self.tau)

    @classmethod
    def stack(cls, agents: list["TrackingRNN"]) -> "TrackingRNN":
        """An ensemble whose member k is ``agents[k]`` (same N, dt and tau)."""
        if not agents or not all(isinstance(a, TrackingRNN) and not a.batch_shape
                                 for a in agents):
            raise TypeError("stack needs a non-empty list of single TrackingRNN networks")
        a0 = agents[0]
        if any(a.N != a0.N or a.dt != a0.dt or a.tau != a0.tau for a in agents):
            raise ValueError("stacked networks must share N, dt and tau")
        return cls.from_tensors(*(torch.stack([getattr(a, k).detach() for a in agents])
                                  for k in ("W", "W_in", "W_out")), a0.dt, a0.tau)

    def member(self, k: int) -> "TrackingRNN":
        """Ensemble member k, a copy."""
        if not self.batch_shape:
            raise ValueError("member() needs an ensemble (TrackingRNN.stack)")
        k = _checks.integer("k", k, low=0, high=self.batch_shape[0] - 1)
        return self.from_tensors(self.W[k], self.W_in[k], self.W_out[k], self.dt, self.tau)

    def member_view(self, k: int) -> "TrackingRNN":
        """Member k sharing the ensemble's tensors (gradients reach them): for stepping one
        member's references inside a training epoch."""
        obj = type(self).__new__(type(self))
        obj.dt, obj.tau = self.dt, self.tau
        obj.W, obj.W_in, obj.W_out = self.W[k], self.W_in[k], self.W_out[k]
        return obj

    @property
    def N(self) -> int:
        return self.W.shape[-1]

    @property
    def batch_shape(self) -> tuple:
        """() for one network, (members,) for an ensemble."""
        return tuple(self.W.shape[:-2])

    @property
    def alpha(self) -> float:
        return self.dt / self.tau

    def parameters(self, W_in: bool = False) -> list[torch.Tensor]:
        """The trained tensors: W and W_out, and W_in too if ``W_in`` (the authors' open-loop
        twin; it then starts requiring gradients)."""
        if W_in:
            self.W_in.requires_grad_(True)
            return [self.W, self.W_out, self.W_in]
        return [self.W, self.W_out]

    def readout(self, h: torch.Tensor) -> torch.Tensor:
        """u = W_out h: h (..., N) -> (..., 2), accelerations."""
        return h @ self.W_out.transpose(-1, -2)

    def snapshot(self) -> dict:
        """The tensors as numpy arrays; W_in is fixed, but a saved history needs it to rebuild
        the network (``agent_at``)."""
        return {k: getattr(self, k).detach().cpu().numpy().copy()
                for k in ("W", "W_out", "W_in")}

    def rate_eigenvalues(self) -> np.ndarray:
        """eig(W - I)/tau (*batch_shape, N) complex, in 1/s: the modes of dh/dt = (W - I) h /
        tau. A pair a +/- i b oscillates at b rad/s. Sorted by decreasing imaginary part."""
        W = self.W.detach()
        eye = torch.eye(self.N, dtype=W.dtype, device=W.device)
        ev = torch.linalg.eigvals(W - eye).cpu().numpy() / self.tau
        return np.take_along_axis(ev, np.argsort(-ev.imag, axis=-1, kind="stable"), -1)

    def __repr__(self):
        bs = f", batch_shape={self.batch_shape}" if self.batch_shape else ""
        return f"TrackingRNN(N={self.N}, dt={self.dt}, tau={self.tau}{bs})"


def draw_networks(seeds, N: int = 100, g: float = 0.2, dt: float = 0.1, tau: float = 1.0,
                  stream: str = "package", dtype=DTYPE) -> tuple[list[TrackingRNN], list]:
    """One freshly drawn ``TrackingRNN`` per seed of ``seeds`` (in order; none for an empty
    list), for ``TrackingRNN.stack``, and the streams they were drawn from (``stream``, a
    kind of ``streams.KINDS``), to train them on; ``dtype`` their number format.
    Introduced in Chapter 4, section "Compared with people"."""
    if isinstance(seeds, (list, tuple, range)) and not len(seeds):
        return [], []
    runs = [streams.Stream(s, stream) for s in _checks.seeds("seeds", seeds)]
    return [TrackingRNN(N=N, g=g, dt=dt, tau=tau, seed=s, dtype=dtype) for s in runs], runs


def other_seeds(seed: int, n: int) -> list[int]:
    """The ``n`` smallest seeds (integers >= 0) other than ``seed``: the further runs of a
    seed spread, never a repeat of the chapter's own run (seed 0: 1..n)."""
    seed, n = _checks.seed("seed", seed), _checks.integer("n", n, low=0)
    return [s for s in range(n + 1) if s != seed][:n]


def input_weight_change(before: TrackingRNN, after: TrackingRNN, columns) -> float:
    """How far training moved the input weights that read ``columns`` of (x, y, r_x, r_y):
    ||W_in_after[:, columns] - W_in_before[:, columns]|| / ||W_in_before[:, columns]||
    (Frobenius norms). Introduced in Chapter 4, section "Open-loop twin"."""
    _checks.instance("before", before, TrackingRNN)
    _checks.instance("after", after, TrackingRNN)
    check_single(before, "before")
    check_single(after, "after")
    if before.N != after.N:
        raise ValueError(f"before and after must be the same size of network, got N = "
                         f"{before.N} and {after.N}")
    start, end = before.W_in.detach()[:, columns], after.W_in.detach()[:, columns]
    return float((end - start).norm() / start.norm())


def check_pair(agent, plant, name="agent") -> None:
    """TypeError/ValueError unless ``agent`` (named ``name`` in the error) is a TrackingRNN
    that steps ``plant``: the same dt, on the same device."""
    _checks.instance(name, agent, TrackingRNN)
    _checks.instance("plant", plant, PointMass)
    check_same_grid(name, agent.dt, agent.W.device, plant, dtype=agent.W.dtype)


def check_single(agent, name="agent") -> None:
    """ValueError unless ``agent`` is one network, not an ensemble."""
    if agent.batch_shape:
        raise ValueError(f"{name} must be one network here, got an ensemble "
                         f"{agent.batch_shape}: take a member (agent.member(k))")
