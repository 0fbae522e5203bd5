"""RNN controllers (paper s.2 and s.4).

    h_{t+1} = phi(W h_t + m y_{t+1}),    u_{t+1} = z . h_{t+1},    h_0 = 0, u_0 = 0.

Every tensor may carry leading *ensemble* axes (``batch_shape``): K agents that train side by
side in one vectorized computation. Shapes: W (*batch_shape, N, N); m, z, u, v
(*batch_shape, N). Agents are plain containers of tensors so that ensembles can be stacked
and members taken out without copying modules.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from . import _checks, streams
from ._loop import closed_loop
from .conventions import INITS
from .envs import DTYPE
from .streams import make_generator  # noqa: F401 - its home before streams existed

ACTIVATIONS = {"tanh": torch.tanh, "identity": lambda a: a}


class Agent:
    """Base class: named tensors, some trainable, with ensemble axes in front."""

    names: tuple[str, ...] = ()
    lead = "z"  # the tensor (*batch_shape, n) whose leading axes and dtype are the agent's

    def __init__(self, tensors: dict[str, torch.Tensor], trainable, activation: str):
        self.activation = _checks.choice("activation", activation, ACTIVATIONS)
        self.phi = ACTIVATIONS[activation]
        missing = set(self.names) - set(tensors)
        if missing:
            raise ValueError(f"missing tensors {sorted(missing)} for {type(self).__name__}")
        bad = set(trainable) - set(self.names)
        if bad:
            raise ValueError(f"trainable must name tensors in {self.names}, got {sorted(bad)}")
        self.trainable = tuple(trainable)
        self.tensors = {}
        for k in self.names:
            t = _checks.finite_tensor(k, tensors[k]).detach().clone()
            self.tensors[k] = t.requires_grad_(k in self.trainable)
        dtypes = {t.dtype for t in self.tensors.values()}
        if len(dtypes) > 1:
            raise TypeError(f"the tensors {self.names} must share one dtype, got "
                            f"{ {k: t.dtype for k, t in self.tensors.items()} }")
        if len({t.device for t in self.tensors.values()}) > 1:
            raise ValueError(f"the tensors {self.names} must be on one device, got "
                             f"{ {k: str(t.device) for k, t in self.tensors.items()} }")
        self._check_shapes()

    def __getattr__(self, name):
        tensors = self.__dict__.get("tensors", {})
        if name in tensors:
            return tensors[name]
        raise AttributeError(name)

    def _check_shapes(self):
        z = self.tensors["z"]
        if z.dim() < 1 or z.shape[-1] < 1:
            raise ValueError(f"z must have shape (*batch_shape, N) with N >= 1, got "
                             f"{tuple(z.shape)}")
        for k, t in self.tensors.items():
            want = self.batch_shape + ((self.N, self.N) if k == "W" else (self.N,))
            _checks.shape(k, t, want)

    @property
    def N(self) -> int:
        return self.tensors["z"].shape[-1]

    @property
    def batch_shape(self) -> tuple:
        return tuple(self.tensors[self.lead].shape[:-1])

    @property
    def dtype(self) -> torch.dtype:
        return self.tensors[self.lead].dtype

    @property
    def device(self) -> torch.device:
        return next(iter(self.tensors.values())).device  # one device for all (__init__)

    def parameters(self) -> list[torch.Tensor]:
        return [self.tensors[k] for k in self.trainable]

    def readout(self, h: torch.Tensor) -> torch.Tensor:
        """u = z . h: h (*batch_shape, B, N) -> (*batch_shape, B)."""
        return (h * self.tensors["z"].unsqueeze(-2)).sum(-1)

    def recurrent_matrix(self) -> torch.Tensor:
        return self.tensors["W"]

    def step(self, h: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """h' = phi(W h + m y): h (*batch_shape, B, N), y (*batch_shape, B)."""
        W, m = self.recurrent_matrix(), self.tensors["m"]
        return self.phi(h @ W.transpose(-1, -2) + y[..., None] * m.unsqueeze(-2))

    def drive(self, y: torch.Tensor) -> torch.Tensor:
        """Open-loop response to a given observation sequence (the environment is not stepped).

        y (T, B) or (T, *batch_shape, B): the observations y_1..y_T; h_0 = 0.
        Returns u (T, *batch_shape, B): u_1..u_T. Introduced in Chapter 1, section
        "Open-loop training".
        """
        _checks.on_device("y", y, self.device)
        _checks.finite_tensor("y", y, self.dtype)
        if y.dim() < 2 or y.shape[0] < 1 or tuple(y.shape[1:-1]) not in ((), self.batch_shape):
            raise ValueError(f"y must have shape (T, B) or (T, *batch_shape, B) with T >= 1 "
                             f"and batch_shape={self.batch_shape}, got {tuple(y.shape)}")
        return self._drive(y)

    def _drive(self, y):
        """``drive`` unchecked (open-loop training, every epoch, on inputs it made itself)."""
        K, B = self.batch_shape, y.shape[-1]
        if y.dim() == 2:  # the same observations for every member
            y = y.reshape(y.shape[0], *(1,) * len(K), B)
        # the step loop of the closed loop with no environment: the state is h alone and
        # m y_{t+1} enters each step as an input
        m, z = self.tensors["m"], self.tensors["z"]
        h0 = y.new_zeros(*K, B, self.N)
        _, _, u = closed_loop(self.recurrent_matrix().transpose(-1, -2), h0, z, y.shape[0],
                              self.activation == "tanh", 0, y[..., None] * m.unsqueeze(-2))
        return u[1:]

    # ensembles -----------------------------------------------------------------------------
    def _new(self, tensors):
        return type(self)._from(tensors, self.trainable, self.activation)

    @classmethod
    def _from(cls, tensors, trainable, activation):
        obj = cls.__new__(cls)
        Agent.__init__(obj, tensors, trainable, activation)
        return obj

    def detached(self) -> "Agent":
        """A copy with fresh leaf tensors (same values)."""
        return self._new({k: t.detach() for k, t in self.tensors.items()})

    def to(self, dtype) -> "Agent":
        """A detached copy in another floating dtype (itself, detached, in the same one)."""
        dtype = _checks.float_dtype("dtype", dtype)
        return self._new({k: t.detach().to(dtype) for k, t in self.tensors.items()})

    def member(self, k: int) -> "Agent":
        """Ensemble member k (removes the first ensemble axis)."""
        if not self.batch_shape:
            raise ValueError("member() needs an ensemble (an agent with batch_shape != ())")
        k = _checks.integer("k", k, low=0, high=self.batch_shape[0] - 1)
        return self._new({n: t.detach()[k] for n, t in self.tensors.items()})

    @classmethod
    def stack(cls, agents: list["Agent"]) -> "Agent":
        """An ensemble whose member k is ``agents[k]``."""
        if not agents or any(type(a) is not cls for a in agents):
            raise ValueError(f"stack needs a non-empty list of {cls.__name__}")
        a0 = agents[0]
        if any(a.trainable != a0.trainable or a.activation != a0.activation
               or any(a.tensors[n].shape != a0.tensors[n].shape for n in cls.names)
               for a in agents):
            raise ValueError("stacked agents must share N, batch_shape, activation and trainable")
        tensors = {n: torch.stack([a.tensors[n].detach() for a in agents]) for n in cls.names}
        return cls._from(tensors, a0.trainable, a0.activation)

    def snapshot(self) -> dict:
        """The tensors as numpy arrays (for a training history)."""
        return {k: t.detach().cpu().numpy().copy() for k, t in self.tensors.items()}

    def __repr__(self):
        bs = f", batch_shape={self.batch_shape}" if self.batch_shape else ""
        return f"{type(self).__name__}(N={self.N}, activation={self.activation!r}{bs})"


class RNNAgent(Agent):
    """Full-rank RNN controller with W ~ N(0, g^2/N) entries (paper s.2).

    ``init='paper'`` (the authors' code, section 9 of the spec): m, z ~ N(0, 1/N^2) entries,
    standard deviation 1/N; ``init='gaussian'`` (the paper's text, s.2): N(0, 1/N).
    ``N`` neurons; ``g`` initial recurrent strength (0.1 in the paper's tanh runs);
    ``activation`` 'tanh' or 'identity'; ``batch_shape`` ensemble axes; ``seed`` (an integer,
    the package stream, or a ``streams.Stream``) fixes the draw (made on the CPU, then moved
    to ``device``; the same normal draws for either ``init``, only their scale differs).
    W, m and z are trained. Introduced in Chapter 1.
    """

    names = ("W", "m", "z")

    def __init__(self, N: int = 100, g: float = 0.1, activation: str = "tanh", seed: int = 0,
                 batch_shape: tuple = (), dtype=DTYPE, device="cpu", init: str = "paper"):
        N = _checks.integer("N", N, low=1)
        g = _checks.real("g", g, low=0.0)
        _checks.choice("activation", activation, ACTIVATIONS)
        _checks.choice("init", init, INITS)
        bs = _checks.int_tuple("batch_shape", batch_shape)
        dtype = _checks.float_dtype("dtype", dtype)
        _checks.fits_memory(f"N={N} with batch_shape={bs} (W has N^2 entries per member)",
                            math.prod(bs) * N * N, dtype.itemsize)
        std = 1 / N if init == "paper" else 1 / math.sqrt(N)
        W, m, z = streams.stream(seed).rnn(N, g, std, bs, dtype)
        tensors = {k: t.to(device) for k, t in (("W", W), ("m", m), ("z", z))}
        super().__init__(tensors, ("W", "m", "z"), activation)

    @classmethod
    def from_tensors(cls, W, m, z, activation="tanh", trainable=("W", "m", "z")):
        return cls._from({"W": W, "m": m, "z": z}, trainable, activation)


class RankOneAgent(Agent):
    """Linear RNN with rank-one recurrence W = u v^T (paper s.4).

    u, v ~ N(0, uv_scale^2/N) entries. ``init='paper'`` (the authors' code, section 9 of the
    spec): m and z entries ~ U(-1/sqrt(N), 1/sqrt(N)), so |m|^2 ~ 1/3; ``init='gaussian'``
    (the paper's text): N(0, 1/N), |m|^2 ~ 1. If ``s_zm0`` is given, z = s_zm0 m / |m|^2 +
    z_perp with z_perp orthogonal to m, so z . m = s_zm0 exactly: with ``init='paper'``
    |z_perp| is ``z_perp_scale`` times the parallel part's norm |s_zm0| / |m| (the authors'
    construction), with 'gaussian' z_perp has typical norm ``z_perp_scale``. ``s_zm0`` may
    be a tensor of shape ``batch_shape`` (one prescribed overlap per ensemble member). u, v,
    z are trained; m is fixed unless ``train_m``. ``seed``: an integer (the package stream)
    or a ``streams.Stream`` (e.g. the authors' draws). The draw is made on the CPU, then
    moved to ``device``. Introduced in Chapter 2, section "The setup".
    """

    names = ("u", "v", "z", "m")

    def __init__(self, N: int = 100, seed: int = 0, s_zm0=None, z_perp_scale: float = 0.1,
                 uv_scale: float = 1.0, train_m: bool = False, batch_shape: tuple = (),
                 dtype=DTYPE, device="cpu", init: str = "paper"):
        N = _checks.integer("N", N, low=1)
        _checks.choice("init", init, INITS)
        uv_scale = _checks.real("uv_scale", uv_scale, low=0.0)
        z_perp_scale = _checks.real("z_perp_scale", z_perp_scale, low=0.0)
        bs = _checks.int_tuple("batch_shape", batch_shape)
        dtype = _checks.float_dtype("dtype", dtype)
        _checks.fits_memory(f"N={N} with batch_shape={bs}", math.prod(bs) * N * 4,
                            dtype.itemsize)
        if not isinstance(train_m, (bool, np.bool_)):
            raise TypeError(f"train_m must be True or False, got {_checks.short(train_m)}")
        u, v, m, z = streams.stream(seed).rank_one(N, uv_scale, init, bs, dtype)
        if s_zm0 is not None:
            z = _prescribed_readout(s_zm0, m, z, z_perp_scale, N, relative=init == "paper")
        trainable = ("u", "v", "z") + (("m",) if train_m else ())
        tensors = {k: t.to(device) for k, t in (("u", u), ("v", v), ("z", z), ("m", m))}
        super().__init__(tensors, trainable, "identity")

    @classmethod
    def from_tensors(cls, u, v, z, m, trainable=("u", "v", "z")):
        return cls._from({"u": u, "v": v, "z": z, "m": m}, trainable, "identity")

    def recurrent_matrix(self) -> torch.Tensor:
        return self.tensors["u"][..., :, None] * self.tensors["v"][..., None, :]

    def overlaps(self) -> torch.Tensor:
        """(s_zm, s_zu, s_vm, s_vu), shape (*batch_shape, 4); differentiable."""
        u, v, z, m = (self.tensors[k] for k in ("u", "v", "z", "m"))
        dot = lambda a, b: (a * b).sum(-1)
        return torch.stack([dot(z, m), dot(z, u), dot(v, m), dot(v, u)], dim=-1)

    def compressed(self) -> "RankOneAgent":
        """The same network with N = 4 neurons: u, v, z, m written in an orthonormal basis of
        span{m, u, v, z} (per ensemble member; needs N >= 4).

        Gradients never leave that span (grad_z in span{m, u}, grad_u in span{z, v}, grad_v in
        span{m, u}), so with m fixed the compressed network trains exactly like this one, at
        any N: same inner products, same loss, same clipping, same SGD step. Its learning is a
        system of the 10 inner products of m, u, v, z, of which the loss sees 4 (the overlaps)
        and the other 6 set the step (``overlap_metric``). Introduced in Chapter 3, section
        "Stage 3".
        """
        if "m" in self.trainable:
            raise ValueError("compressed() needs m fixed (train_m=False): a trained m leaves "
                             "the span")
        if self.N < 4:
            raise ValueError(f"compressed() needs N >= 4, got N={self.N}")
        t = {k: self.tensors[k].detach() for k in ("u", "v", "z", "m")}
        Q, _ = torch.linalg.qr(torch.stack([t["m"], t["u"], t["v"], t["z"]], -1))
        coords = {k: (Q.transpose(-1, -2) @ v.unsqueeze(-1)).squeeze(-1) for k, v in t.items()}
        return RankOneAgent.from_tensors(coords["u"], coords["v"], coords["z"], coords["m"],
                                         trainable=self.trainable)

    def overlap_metric(self) -> torch.Tensor:
        """G (*batch_shape, 4, 4): a gradient step on u, v, z moves the overlaps by
        -lr G grad_q(loss) + O(lr^2), with m fixed.

        Since grad_z = g_zm m + g_zu u, grad_u = g_zu z + g_vu v, grad_v = g_vm m + g_vu u,
        G is made of the vectors' norms and mutual overlaps (and the full gradient's squared
        norm is g^T G g). G = I only if |m| = 1, |u|^2 + |z|^2 = |u|^2 + |v|^2 = 1 and m.u =
        z.v = 0. Introduced in Chapter 3, section "Stage 3: four numbers are enough".
        """
        u, v, z, m = (self.tensors[k].detach() for k in ("u", "v", "z", "m"))
        dot = lambda a, b: (a * b).sum(-1)
        mm, mu, zv = dot(m, m), dot(m, u), dot(z, v)
        zero = torch.zeros_like(mm)
        rows = [[mm, mu, zero, zero],
                [mu, dot(u, u) + dot(z, z), zero, zv],
                [zero, zero, mm, mu],
                [zero, zv, mu, dot(u, u) + dot(v, v)]]
        return torch.stack([torch.stack(r, -1) for r in rows], -2)


class OverlapAgent(Agent):
    """The reduced model of a rank-one network: its four overlaps alone (paper s.5, stage 3).

    The state is q = (s_zm, s_zu, s_vm, s_vu), (*batch_shape, 4), and the closed loop runs
    through the 4x4 P_eff of ``coupled.effective_matrix``, so a RankOneAgent and the
    OverlapAgent of its overlaps have the same loss. What differs is the gradient step.
    Trained are coordinates w with q = q0 + L w (w = 0 at the start), so a step of size lr
    moves the overlaps by -lr G grad_q(loss) with G = L L^T:

    - ``metric=None``: G = I, plain gradient descent on the overlaps: the paper's stage-3 model
      (spec section 9). The gradient that training clips is that of w, here the overlaps'
      own 4-vector gradient; give it its own batches with ``train_closed_loop(..., seed=)``;
    - ``metric`` (*batch_shape, 4, 4) symmetric positive definite: G, e.g. the metric of the
      full network at the start (``RankOneAgent.overlap_metric``), with which the first step
      equals the full network's to first order in lr, clipping included (the gradient norm
      is sqrt(g^T G g) in both).

    Introduced in Chapter 3, section "Stage 3: four numbers are enough?" (``reduced.stage3_runs``
    trains both beside the full network and its exact reduction).
    """

    names = ("q0", "L", "w")
    lead = "q0"

    def __init__(self, overlaps, metric=None, dtype=DTYPE):
        q0 = torch.as_tensor(overlaps, dtype=dtype)
        _checks.finite_tensor("overlaps", q0)
        if q0.dim() < 1 or q0.shape[-1] != 4:
            raise ValueError(f"overlaps must have shape (*batch_shape, 4), got {tuple(q0.shape)}")
        if metric is None:
            L = torch.eye(4, dtype=dtype, device=q0.device).expand(*q0.shape[:-1], 4, 4)
        else:
            G = torch.as_tensor(metric, dtype=dtype, device=q0.device)
            _checks.shape("metric", G, q0.shape[:-1] + (4, 4))
            L, info = torch.linalg.cholesky_ex(G)
            if not torch.allclose(G, G.transpose(-1, -2)) or (info != 0).any():
                raise ValueError("metric must be symmetric positive definite")
        super().__init__({"q0": q0, "L": L, "w": torch.zeros_like(q0)}, ("w",), "identity")

    def _check_shapes(self):
        _checks.shape("w", self.tensors["w"], self.tensors["q0"].shape)

    @property
    def N(self) -> int:
        """The hidden state lives in span{m, u}: two coordinates (a, b)."""
        return 2

    def overlaps(self) -> torch.Tensor:
        """(s_zm, s_zu, s_vm, s_vu) = q0 + L w, shape (*batch_shape, 4); differentiable."""
        t = self.tensors
        return t["q0"] + (t["L"] @ t["w"].unsqueeze(-1)).squeeze(-1)

    @classmethod
    def of(cls, agent: "RankOneAgent", metric: bool = True) -> "OverlapAgent":
        """The reduced model of ``agent``: its overlaps, with its metric unless
        ``metric=False``."""
        if not isinstance(agent, RankOneAgent):
            raise TypeError(f"agent must be a RankOneAgent, got {type(agent).__name__}")
        with torch.no_grad():
            return cls(agent.overlaps(), agent.overlap_metric() if metric else None)


def has_overlaps(agent) -> bool:
    """Whether the agent's closed loop is the 4-dim P_eff of its overlaps."""
    return isinstance(agent, (RankOneAgent, OverlapAgent))


def _prescribed_readout(s_zm0, m, z_draw, z_perp_scale, N, relative=False):
    """z = s_zm0 m / |m|^2 + z_perp: ``relative`` makes |z_perp| = z_perp_scale |s_zm0| / |m|
    exactly (the authors'), else z_perp is the draw's part orthogonal to m times
    z_perp_scale."""
    s = _checks.real_tensor("s_zm0", s_zm0, m.dtype)
    if (s.abs() > 1).any():
        raise ValueError(f"s_zm0 must lie in [-1, 1] (|z.m| <= |z||m| ~ 1 at the N(0, 1/N) "
                         f"scale), got {s_zm0!r}")
    if s.shape not in ((), m.shape[:-1]):
        raise ValueError(f"s_zm0 must be a number or have shape batch_shape="
                         f"{tuple(m.shape[:-1])}, got shape {tuple(s.shape)}")
    if N < 2 and z_perp_scale > 0:
        raise ValueError("z_perp_scale must be 0 when N = 1 (no direction orthogonal to m)")
    mm = (m * m).sum(-1, keepdim=True)
    perp = z_draw - (z_draw * m).sum(-1, keepdim=True) / mm * m
    if relative:  # a unit direction orthogonal to m, scaled to a fraction of the parallel part
        norm = perp.norm(dim=-1, keepdim=True)
        perp = perp / torch.where(norm > 0, norm, 1.0) * s[..., None].abs() / mm.sqrt()
    return s[..., None] * m / mm + streams.scaled_draw("z_perp_scale", z_perp_scale, perp,
                                                1)
