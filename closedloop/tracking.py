"""The motor tracking task (paper s.7): a continuous-time linear RNN steers a 2-D point mass
along a reference made of sinusoids, trained closed-loop or as an open-loop twin.

Units: time in seconds (one step = dt = 0.1 s), frequencies in Hz, angular frequencies in
rad/s. Shapes: plant states q (..., 4) = (x, vx, y, vy); controls u (..., 2) = (ax, ay);
references r (B, T+1, 2) at t = 0..T; K sinusoids, N neurons, B references per batch.

One episode, from q_0 = 0, for t = 0..T-1 (the network reads t = 0 under the authors'
convention: h_0 = (dt/tau) W_in in_0; under the book's h_0 = 0 and the first read is t = 1):

    u_t = W_out h_t,   q_{t+1} = clamp(F q_t + B_p u_t, +/-bound)   explicit Euler: x += dt vx
    in_{t+1} = (x_{t+1}, y_{t+1}, r_x((t+1) dt), r_y((t+1) dt))
    h_{t+1} = h_t + (dt/tau) (-h_t + W h_t + W_in in_{t+1})

h_t is the state after reading in_t, so u_t is the control computed from what the network saw
at t. Loss of an episode (``conventions.TrackingConvention``, applied by ``Scoring``):
L = scale (1/T) sum_{t=1..T} ||p_t - r_{t - offset}||^2, p = (x, y), summed over the two axes;
the authors' (default) pair the position reached with the reference shown (offset 1: the
error x_{i+1} - r(t_i), i = 0..T-1) and weight each step by dt (scale dt); the book's earlier
scoring has offset 0 and scale 1. A probe's loss when the network does nothing is then
scale A^2/2 after the ramp (``Scoring.power``).

Exact mode. Away from the clamp the loop is linear and time-invariant,
s_{t+1} = M s_t + G r_{t+1} with s = (q, h). A reference is Re sum_k c_k rho_k(t) e_{a_k}, with
c_k = A_k e^{i phi_k} and rho_k(t) = ramp(t) e^{i omega_k t dt}, so every trajectory is
Re sum_k c_k Y_k(t), Y_k the complex response to rho_k on axis a_k. Averaged over independent
uniform phases, the cross terms vanish and

    E_phi L = sum_k scale (A_k^2 / 2) (1/T) sum_t ||E_k(t)||^2,
    E_k(t) = Y_k(t)[pos] - rho_k(t - offset) e_{a_k},

one term per sinusoid: the k-th is the probe loss of sinusoid k alone. Four complex
trajectories give the exact loss, the probe losses and (recombined with the phases) the
sampled loss of any batch. They are convolutions (one FFT each) with the loop's impulse
response C M^s G, s = 0..T, whose powers of M take a few matrix products (baby-step
giant-step): no per-step Python loop. The pairing only shifts the targets against the
responses.

The clamp. sum_k A_k |Y_k(t)| is the largest |state| over all phases; while it stays within the
bound the clamp never acts and the linear computation is exact. Otherwise the sampled losses
step the clamped plant for the references that reach the bound (``rollout``), so sampled
training always sees the paper's plant; the exact loss and the probe losses are those of the
unclamped linear loop. Introduced in Chapter 4.
"""

from __future__ import annotations

import math
import time
import warnings

import numpy as np
import torch

from . import _checks, conventions
from ._threads import single_thread
from .agents import make_generator
from .envs import DTYPE
from .stages import settles
from .training import History, _attach_history, _interrupted, _stack_rows, _stopped

MODES = ("sampled", "exact")
# human manual tracking, normalized acquisition time of 0.1, 0.2, 0.3, 0.4 Hz (paper s.7)
HUMAN_ACQUISITION = (2.5 / 20, 4 / 20, 6 / 20, 9.5 / 20)
# the epochs the authors marked as the acquisitions in their figure (chosen by hand, low to
# high frequency), of a run of AUTHORS_EPOCHS epochs (paper s.9)
AUTHORS_ACQUISITION = (230, 1200, 2600, 4500)
AUTHORS_EPOCHS = 10000
OUTPUTS = ("x", "vx", "y", "vy", "ux", "uy")  # the columns of a linear response
POS = [0, 2]  # x, y among the plant coordinates


class PointMass:
    """2-D point mass under acceleration control, state (x, vx, y, vy), explicit Euler step dt.

    ``bound``: every state coordinate is clamped to [-bound, bound] after each step (the paper's
    +/-10); None: no clamp. ``device``: where the task's computations run (the references
    and networks must be there too). Introduced in Chapter 4, section "The task".
    """

    n_state = 4

    def __init__(self, dt: float = 0.1, bound: float | None = 10.0, dtype=DTYPE,
                 device="cpu"):
        self.dt = _checks.real("dt", dt, low=0.0, low_open=True)
        self.bound = None if bound is None else _checks.real("bound", bound, low=0.0,
                                                             low_open=True)
        self.dtype = dtype
        kw = dict(dtype=dtype, device=device)
        block = torch.tensor([[1.0, self.dt], [0.0, 1.0]], **kw)
        self.F = torch.block_diag(block, block)                       # (4, 4)
        self.B = torch.zeros(4, 2, **kw)                              # (4, 2)
        self.B[1, 0] = self.B[3, 1] = self.dt
        self.C = torch.zeros(2, 4, **kw)                              # positions (x, y)
        self.C[0, 0] = self.C[1, 2] = 1.0

    def step(self, q: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """q (..., 4), u (..., 2) -> q' (..., 4)."""
        q = q @ self.F.T + u @ self.B.T
        return q if self.bound is None else q.clamp(-self.bound, self.bound)

    def __repr__(self):
        return f"PointMass(dt={self.dt}, bound={self.bound})"


class Sinusoids:
    """References: per axis a sum of sinusoids with random phases, ramped in linearly.

    r(t) = ramp(t) sum_k A_k cos(omega_k t dt + phi_k) e_{a_k},  ramp(t) = min(t dt / ramp, 1),
    omega_k = 2 pi freqs[k]; t = 0..T. Defaults: the paper's 0.1 and 0.3 Hz on x, 0.2 and
    0.4 Hz on y (listed low to high), amplitude 2.31, 300 steps of 0.1 s, 1 s ramp.
    Introduced in Chapter 4, section "The task".
    """

    def __init__(self, freqs=(0.1, 0.2, 0.3, 0.4), axes=(0, 1, 0, 1), amplitude=2.31,
                 T: int = 300, dt: float = 0.1, ramp: float = 1.0, dtype=DTYPE,
                 device="cpu"):
        self.dt = _checks.real("dt", dt, low=0.0, low_open=True)
        self.T = _checks.integer("T", T, low=1)
        self.ramp = _checks.real("ramp", ramp, low=0.0)
        for name, value in (("freqs", freqs), ("axes", axes)):
            if not isinstance(value, (tuple, list)):
                raise TypeError(f"{name} must be a tuple, got {_checks.short(value)}")
        nyquist = 1 / (2 * self.dt)
        try:
            self.freqs = tuple(_checks.real(f"freqs[{k}]", f, low=0.0, low_open=True,
                                            high=nyquist, high_open=True)
                               for k, f in enumerate(freqs))
        except ValueError as e:
            raise ValueError(f"{e} (the Nyquist frequency 1/(2 dt) for dt={self.dt})") from None
        if not self.freqs:
            raise ValueError("freqs must name at least one frequency")
        _checks.fits_memory(f"T={self.T} steps of {len(self.freqs)} sinusoids",
                            4 * len(self.freqs) * (self.T + 1))
        if len(axes) != len(self.freqs):
            raise ValueError(f"axes must give one axis per frequency ({len(self.freqs)}), got "
                             f"{len(axes)}")
        self.axes = tuple(int(_checks.choice(f"axes[{k}]", a, (0, 1))) for k, a in enumerate(axes))
        amp = amplitude if isinstance(amplitude, (tuple, list)) else [amplitude] * len(freqs)
        if len(amp) != len(self.freqs):
            raise ValueError(f"amplitude must be a number or one per frequency, got {amplitude!r}")
        self.amplitude = tuple(_checks.real(f"amplitude[{k}]", a, low=0.0, low_open=True)
                               for k, a in enumerate(amp))
        self.dtype = dtype
        kw = dict(dtype=dtype, device=device)
        self.omega = torch.tensor([2 * math.pi * f for f in self.freqs], **kw)  # rad/s
        self.A = torch.tensor(self.amplitude, **kw)
        t = torch.arange(self.T + 1, **kw) * self.dt
        env = (t / self.ramp).clamp(max=1.0) if self.ramp > 0 else torch.ones_like(t)
        self.rho = env * torch.exp(1j * self.omega[:, None] * t)      # (K, T+1) complex
        self._power = self.A ** 2 / 2
        self._scorings = {}

    @property
    def K(self) -> int:
        return len(self.freqs)

    def reference_power(self) -> torch.Tensor:
        """A_k^2 / 2 (K,): a probe's loss when the network does nothing (after the ramp)."""
        return self._power.clone()

    def silent_losses(self, convention=None) -> torch.Tensor:
        """Each probe's exact loss when the mass stays at the origin (K,), in the units of
        ``convention`` (default the authors'): a little below its ``Scoring.power`` because
        of the ramp."""
        return self.scoring(convention).silent_losses()

    def scoring(self, convention=None) -> Scoring:
        """These references scored under ``convention`` (a ``TrackingConvention``, its name or
        None: the authors'), built once per convention."""
        conv = conventions.resolve_tracking(convention)
        if conv not in self._scorings:
            self._scorings[conv] = Scoring(self, conv)
        return self._scorings[conv]

    def sample_phases(self, batch: int, generator: torch.Generator) -> torch.Tensor:
        """phi ~ U(-pi, pi), (batch, K), drawn on the generator's device (the package's are
        CPU generators) and placed on the references' device."""
        batch = _checks.integer("batch", batch, low=1)
        u = torch.rand(batch, self.K, generator=generator, dtype=self.dtype,
                       device=generator.device)
        return ((2 * u - 1) * math.pi).to(self.A.device)

    def coefficients(self, phases: torch.Tensor, which=None) -> torch.Tensor:
        """c_k = A_k e^{i phi_k} (..., B, K) complex for phases (..., B, K) (a leading axis:
        one batch per ensemble member); sinusoids not in ``which`` get c_k = 0."""
        phases = _checks.real_tensor("phases", phases, self.dtype)
        if phases.dim() < 2 or phases.shape[-1] != self.K:
            raise ValueError(f"phases must have shape (..., B, {self.K}), got "
                             f"{tuple(phases.shape)}")
        c = self.A * torch.exp(1j * phases)
        if which is not None:
            if not isinstance(which, (tuple, list, range)):
                raise TypeError(f"which must be a list of sinusoid indices, got "
                                f"{_checks.short(which)}")
            which = [_checks.integer(f"which[{i}]", k, low=-self.K, high=self.K - 1)
                     for i, k in enumerate(which)]
            keep = torch.zeros(self.K, dtype=torch.bool, device=c.device)
            keep[which] = True
            c = torch.where(keep, c, torch.zeros_like(c))
        return c

    def signal(self, phases: torch.Tensor, which=None) -> torch.Tensor:
        """The references (B, T+1, 2) for phases (B, K); ``which``: indices of the sinusoids
        to include (default all; ``[k]`` is the probe of sinusoid k)."""
        c = self.coefficients(phases, which)
        per = (c[:, :, None] * self.rho).real                         # (B, K, T+1)
        r = torch.zeros(c.shape[0], self.T + 1, 2, dtype=self.dtype, device=c.device)
        for k, a in enumerate(self.axes):
            r[..., a] += per[:, k]
        return r

    def __repr__(self):
        return (f"Sinusoids(freqs={self.freqs}, axes={self.axes}, amplitude={self.amplitude}, "
                f"T={self.T}, dt={self.dt}, ramp={self.ramp})")


class Scoring:
    """A ``TrackingConvention`` applied to references: what the closed loop reads at t = 0,
    which reference each position is paired with, the loss's units. The one place this module
    reads a convention (build it with ``Sinusoids.scoring``).

    - ``reads_first``: the network reads in_0 = (x_0, y_0, r(0)) at t = 0, so h_0 =
      (dt/tau) W_in in_0 (the authors'); else h_0 = 0.
    - ``offset``: the error of row t = 1..T is p_t - r((t - offset) dt): 1 for the authors'
      (the position reached against the reference shown when the control was computed),
      0 for the book's.
    - ``scale``: dt (the authors' dt-weighted loss) or 1; a loss is
      scale (1/T) sum_{t=1..T} ||error_t||^2, summed over the two axes.
    - ``rows``: the controls u_t a twin imitates, t = 0..T-1 (authors') or 1..T (book);
      ``twin_scale``: 1/2 where the imitation loss averages over the two axes.
    - ``inputs`` (K, T+1, 2) complex: rho_k(t) e_{a_k} for t = 0..T, what sinusoid k feeds the
      network (t = 0 zeroed unless ``reads_first``); ``inputs_fft``: its FFT over time with
      2 (T+1) points; ``targets`` (K, T, 2): rho_k(t - offset) e_{a_k} for t = 1..T.
    - ``power`` (K,): scale A_k^2/2, the loss of a probe when the network does nothing (after
      the ramp): the unit of the acquisition thresholds.
    """

    def __init__(self, refs: Sinusoids, convention=None):
        _check_type("refs", refs, Sinusoids)
        self.refs = refs
        for name, value in _read(convention, refs.dt).items():
            setattr(self, name, value)
        T = refs.T
        self.rows = slice(1 - self.offset, T + 1 - self.offset)
        seq = torch.zeros(refs.K, T + 1, 2, dtype=refs.rho.dtype, device=refs.rho.device)
        for k, a in enumerate(refs.axes):
            seq[k, :, a] = refs.rho[k]
        self.targets = seq[:, 1 - self.offset:T + 1 - self.offset].clone()
        if not self.reads_first:
            seq[:, 0] = 0
        self.inputs = seq
        self.inputs_fft = torch.fft.fft(seq, n=_fft_len(T + 1), dim=1)
        self.power = self.scale * refs.reference_power()

    def silent_losses(self) -> torch.Tensor:
        """power_k (1/T) sum_{t=1..T} ramp(t - offset)^2 (K,): each probe's exact loss when the
        mass stays at the origin."""
        return self.power * _sq(self.targets).sum(-1).mean(-1)

    def losses(self, q: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        """scale (1/T) sum_{t=1..T} ||p_t - r_{t - offset}||^2 per reference: q (B, T+1, 4) and
        r (B, T+1, 2) at t = 0..T -> (B,). Unchecked: a loop that blew up must reach
        training's divergence stop."""
        return _losses(q, r, self.scale, self.offset)

    def imitation(self, u: torch.Tensor, u_teacher: torch.Tensor) -> torch.Tensor:
        """twin_scale (1/T) sum_{t in rows} ||u_t - u_teacher_t||^2 per reference: controls
        (B, T+1, 2) at t = 0..T -> (B,)."""
        d = u[:, self.rows] - u_teacher[:, self.rows]
        return self.twin_scale * (d ** 2).sum(-1).mean(-1)

    def config(self) -> dict:
        """What a History records of the convention (``history_scoring`` reads it back)."""
        c = self.convention
        return dict(convention=c.name, pairing=c.pairing, dt_weight=c.dt_weight,
                    twin_axes=c.twin_axes, update_at_epoch0=c.update_at_epoch0,
                    twin_trains_W_in=c.twin_trains_W_in, loss_scale=self.scale)

    def __repr__(self):
        return f"Scoring({self.convention.describe()})"


def _read(convention, dt: float) -> dict:
    """The one place a ``TrackingConvention`` (or its name, or None: the authors') is read:
    the attributes of a ``Scoring`` that do not depend on the references (dt: the step)."""
    conv = conventions.resolve_tracking(convention)
    shown = conv.pairing == "shown"
    return dict(convention=conv, reads_first=shown, offset=int(shown),
                scale=dt if conv.dt_weight else 1.0,
                twin_scale=0.5 if conv.twin_axes == "mean" else 1.0,
                update_at_epoch0=conv.update_at_epoch0, twin_trains_W_in=conv.twin_trains_W_in)


def _losses(q, r, scale, offset):
    """scale (1/T) sum_{t=1..T} ||p_t - r_{t - offset}||^2: q (B, T+1, 4), r (B, T+1, 2) ->
    (B,), unchecked (a loop that blew up must reach training's divergence stop)."""
    T = q.shape[1] - 1
    err = q[:, 1:, POS] - r[:, 1 - offset:T + 1 - offset]
    return scale * (err ** 2).sum(-1).mean(-1)


def history_scoring(history: History, refs: Sinusoids) -> Scoring:
    """The Scoring a tracking History was trained under, for ``refs`` (a history saved before
    conventions were recorded was scored the book's way)."""
    _check_type("history", history, History)
    c = history.config
    if "pairing" not in c:
        return refs.scoring(conventions.BOOK_TRACKING)
    conv = conventions.TrackingConvention(
        c["pairing"], bool(c["dt_weight"]), c["twin_axes"], bool(c["update_at_epoch0"]),
        bool(c["twin_trains_W_in"]), c["convention"])
    return refs.scoring(conv)


def _impulse_response(C: torch.Tensor, M: torch.Tensor, G: torch.Tensor, T: int,
                      baby: int = 16) -> torch.Tensor:
    """H_s = C M^s G for s = 0..T-1: C (*K, o, d), M (*K, d, d), G (*K, d, c) -> (T, *K, o, c)
    (K: ensemble axes, shared by the three or broadcast).

    Baby steps M^i G (i < baby, a power of two) by doubling, then giant steps C M^{j baby}:
    log2(baby) products of d x d matrices and T/baby small ones, instead of T sequential steps
    or log2(T) products of a T-long stack with d x d matrices.
    """
    if C.dim() > 2 or M.dim() > 2 or G.dim() > 2:
        return _impulse_response_batched(C, M, G, T, baby)
    babies, Mb = G[None], M
    while babies.shape[0] < min(baby, T):
        babies = torch.cat([babies, Mb @ babies], 0)
        Mb = Mb @ Mb
    b = babies.shape[0]
    giants = [C]
    for _ in range(-(-T // b) - 1):
        giants.append(giants[-1] @ Mb)
    H = torch.einsum("jod,idc->jioc", torch.stack(giants), babies)
    return H.reshape(-1, *H.shape[2:])[:T]


def _impulse_response_batched(C, M, G, T, baby):
    """``_impulse_response`` with ensemble axes: the baby steps side by side in the columns,
    (*K, d, n c), so each doubling is one batched product with M^n (stacking them on a new
    leading axis, as the single-network path does, would broadcast-copy M^n to every baby
    step), and giants x babies one batched product. Same numbers up to rounding."""
    o, c = C.shape[-2], G.shape[-1]
    babies, Mb, n = G, M, 1
    while n < min(baby, T):
        babies = torch.cat([babies, Mb @ babies], -1)
        Mb, n = Mb @ Mb, 2 * n
    giants = [C]
    for _ in range(-(-T // n) - 1):
        giants.append(giants[-1] @ Mb)
    H = torch.cat(giants, -2) @ babies                                 # (*K, J o, n c)
    K = H.shape[:-2]
    H = H.reshape(*K, len(giants), o, n, c).movedim((-4, -2), (0, 1))  # (J, n, *K, o, c)
    return H.reshape(len(giants) * n, *K, o, c)[:T]


def _fft_len(L: int) -> int:
    """The smallest 5-smooth n >= 2L - 1: a linear convolution of two length-L sequences
    fits in n points, and FFTs of 5-smooth lengths are fast (2 x 301 = 2 x 7 x 43 is not)."""
    n = 2 * L - 1
    while True:
        m = n
        for p in (2, 3, 5):
            while m % p == 0:
                m //= p
        if m == 1:
            return n
        n += 1


def _causal_conv(H: torch.Tensor, seq_fft: torch.Tensor) -> torch.Tensor:
    """y[t] = sum_{s <= t} H_s seq[t - s] for t < L (the response at t to inputs seq[j]
    entering at t = j): H (L, *E, o, c) real (E: ensemble axes), ``seq_fft`` the FFT over time,
    with ``_fft_len(L)`` points, of seq (K, L, c) complex -> y (*E, K, L, o) complex."""
    L = H.shape[0]
    Hf = torch.fft.fft(H, n=seq_fft.shape[1], dim=0)
    y = torch.fft.ifft(torch.einsum("l...oc,klc->...klo", Hf, seq_fft), dim=-2)
    return y[..., :L, :]


class TrackingRNN:
    """Linear continuous-time RNN controller, h <- h + (dt/tau)(-h + W h + W_in in), u = W_out h.

    W ~ N(0, g^2/N) entries; W_in (N, 4), reading (x, y, r_x, r_y), and W_out (2, N)
    ~ U(-1/sqrt(N), 1/sqrt(N)) entries (the authors' draw). W and W_out are trained; W_in is
    fixed in closed-loop training and trained by the authors' open-loop twin. ``dt`` (the
    step) and ``tau`` (the time constant) in seconds; ``seed`` fixes the draw.
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
        gen = make_generator(seed)
        W = torch.randn(N, N, generator=gen, dtype=dtype) * (g / math.sqrt(N))
        W_in = (2 * torch.rand(N, 4, generator=gen, dtype=dtype) - 1) / math.sqrt(N)
        W_out = (2 * torch.rand(2, N, generator=gen, dtype=dtype) - 1) / math.sqrt(N)
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
        obj._set(*(torch.as_tensor(x, dtype=DTYPE) for x in (W, W_in, W_out)), dt, tau)
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

    def _view(self, k: int) -> "TrackingRNN":
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


# -- step by step (any reference, with the clamp) ---------------------------------------------
@single_thread()
def rollout(agent: TrackingRNN, plant: PointMass, r: torch.Tensor, convention=None) -> dict:
    """The closed loop stepped T times for references r (B, T+1, 2) at t = 0..T, with the
    plant's clamp: q_0 = 0; h_0 = (dt/tau) W_in in_0 where the convention's network reads
    t = 0 (the authors', default), else h_0 = 0; then for t = 0..T-1
    q_{t+1} = clamp(F q_t + B_p W_out h_t), h_{t+1} = A_h h_t + (dt/tau) W_in in_{t+1}.

    Returns {'q': (B, T+1, 4), 'u': (B, T+1, 2), 'inputs': (B, T+1, 4)} at t = 0..T
    (u_t = W_out h_t). Differentiable; the per-step work is two products with N x N and
    4 x N matrices. One network (an ensemble member: ``agent.member(k)``).
    """
    _check_pair(agent, plant)
    _single(agent)
    _checks.finite_tensor("r", r, agent.W.dtype)
    _checks.shape("r", r, (None, None, 2))
    if r.shape[1] < 2:
        raise ValueError(f"r must have shape (B, T+1, 2) with T >= 1, got {tuple(r.shape)}")
    _checks.fits_memory(f"r of shape {tuple(r.shape)} with N={agent.N}",
                        2 * r.shape[0] * r.shape[1] * (agent.N + 10))
    return _rollout(agent, plant, r, _read(convention, plant.dt)["reads_first"])


def _rollout(agent, plant, r, first: bool) -> dict:
    """``rollout`` unchecked; ``first``: the network reads in_0 (h_0 = a W_in in_0)."""
    B, T, a = r.shape[0], r.shape[1] - 1, agent.alpha
    A_hT = ((1 - a) * torch.eye(agent.N, dtype=r.dtype, device=r.device) + a * agent.W).T
    Pq = a * (agent.W_in[:, :2] @ plant.C).T          # (4, N): positions enter h
    grads = any(t.requires_grad for t in (agent.W, agent.W_out, agent.W_in))
    if not (torch.is_grad_enabled() and grads):
        q, u = _stepped(agent, plant, r, A_hT, Pq, first)
        return {"q": q, "u": u, "inputs": torch.cat([q[..., POS], r], -1)}
    BuT = (plant.B @ agent.W_out).T                   # (N, 4): u = W_out h moves v
    drive = r @ (a * agent.W_in[:, 2:]).T             # (B, T+1, N): the reference enters h
    q = r.new_zeros(B, 4)
    h = drive[:, 0] if first else r.new_zeros(B, agent.N)   # q_0 = 0: only r_0 enters
    qs, hs = [q], [h]
    for t in range(1, T + 1):
        q = q @ plant.F.T + h @ BuT
        if plant.bound is not None:
            q = q.clamp(-plant.bound, plant.bound)
        h = h @ A_hT + q @ Pq + drive[:, t]
        qs.append(q), hs.append(h)
    q, h = torch.stack(qs, 1), torch.stack(hs, 1)
    return {"q": q, "u": agent.readout(h), "inputs": torch.cat([q[..., POS], r], -1)}


def _stepped(agent, plant, r, A_hT, Pq, first):
    """``rollout``'s loop when no gradient is wanted (test losses of a runaway network,
    figures): q and u for every t in small preallocated buffers, h in two rotating ones, and
    the reference entering through its own 2 x N product instead of a (B, T+1, N) drive.
    Allocating the T+1 hidden states afresh on every call costs as much as the loop (page
    faults). Seven calls per step, no temporaries. Returns q (B, T+1, 4) and u (B, T+1, 2)."""
    B, T1, N, a = r.shape[0], r.shape[1], agent.N, agent.alpha
    Q, U = r.new_zeros(T1, B, 4), r.new_zeros(T1, B, 2)
    h, h_next = r.new_zeros(B, N), r.new_empty(B, N)
    qs, us, rs = Q.unbind(0), U.unbind(0), r.transpose(0, 1).contiguous().unbind(0)
    FT, BpT = plant.F.T.contiguous(), plant.B.T.contiguous()
    A_hT, Pq = A_hT.detach().contiguous(), Pq.detach().contiguous()
    WrT = (a * agent.W_in[:, 2:]).detach().T.contiguous()  # (2, N): the reference enters h
    WoT = agent.W_out.detach().T.contiguous()         # (N, 2): u = W_out h
    if first:                                         # h_0 = a W_in in_0 (q_0 = 0)
        torch.mm(rs[0], WrT, out=h)
        torch.mm(h, WoT, out=us[0])
    for t in range(1, T1):
        torch.mm(qs[t - 1], FT, out=qs[t])            # q_t = clamp(F q_{t-1} + B_p u_{t-1})
        qs[t].addmm_(us[t - 1], BpT)
        if plant.bound is not None:
            qs[t].clamp_(-plant.bound, plant.bound)
        torch.mm(h, A_hT, out=h_next)                 # h_t = A_h h_{t-1} + a W_in in_t
        h_next.addmm_(qs[t], Pq).addmm_(rs[t], WrT)
        torch.mm(h_next, WoT, out=us[t])
        h, h_next = h_next, h
    return Q.transpose(0, 1), U.transpose(0, 1)


@single_thread()
def open_loop_controls(agent: TrackingRNN, inputs: torch.Tensor, convention=None
                       ) -> torch.Tensor:
    """The agent's controls (B, T+1, 2) at t = 0..T when fed ``inputs`` (B, T+1, 4) instead of
    its plant (it reads in_0 where the convention's network does: the authors', default)."""
    _single(agent)
    return _open_loop_controls(agent, inputs, _read(convention, agent.dt)["reads_first"])


def _open_loop_controls(agent, inputs, first: bool):
    a = agent.alpha
    A_hT = ((1 - a) * torch.eye(agent.N, dtype=inputs.dtype, device=inputs.device)
            + a * agent.W).T
    drive = inputs @ (a * agent.W_in).T
    h = drive[:, 0] if first else inputs.new_zeros(inputs.shape[0], agent.N)
    hs = [h]
    for t in range(1, inputs.shape[1]):
        h = h @ A_hT + drive[:, t]
        hs.append(h)
    return agent.readout(torch.stack(hs, 1))


def tracking_loss(q: torch.Tensor, r: torch.Tensor, convention=None, dt: float = 0.1
                  ) -> torch.Tensor:
    """The tracking loss per reference, q (B, T+1, 4), r (B, T+1, 2) at t = 0..T -> (B,):
    the authors' (default) (dt/T) sum_{t=0..T-1} ||p_{t+1} - r_t||^2, or under another
    ``convention`` its pairing and weight (the book's: (1/T) sum_{t=1..T} ||p_t - r_t||^2).
    ``dt``: the step (s) that weights a dt-weighted loss."""
    _checks.finite_tensor("q", q)
    _checks.finite_tensor("r", r)
    dt = _checks.real("dt", dt, low=0.0, low_open=True)
    if r.dtype != q.dtype:
        raise TypeError(f"q and r must share a dtype, got {q.dtype} and {r.dtype}")
    if q.dim() != 3 or q.shape[1] < 2 or q.shape[-1] != 4 or r.shape != q.shape[:-1] + (2,):
        raise ValueError(f"q must have shape (B, T+1, 4) with T >= 1 and r (B, T+1, 2), got "
                         f"{tuple(q.shape)} and {tuple(r.shape)}")
    read = _read(convention, dt)
    return _losses(q, r, read["scale"], read["offset"])


# -- linear (unclamped) responses, exact and sampled losses -----------------------------------
def closed_loop_matrix(agent: TrackingRNN, plant: PointMass) -> torch.Tensor:
    """M (*batch_shape, 4+N, 4+N) with s_{t+1} = M s_t + G r_{t+1}, s = (q, h), away from the
    clamp (G: the reference's input weights (dt/tau) W_in[:, 2:] into h)."""
    _check_pair(agent, plant)
    a, N, K = agent.alpha, agent.N, agent.batch_shape
    W_pos = agent.W_in[..., :2]
    top = torch.cat([plant.F.expand(*K, 4, 4), plant.B @ agent.W_out], -1)
    A_h = (1 - a) * torch.eye(N, dtype=agent.W.dtype, device=agent.W.device) + a * agent.W
    bottom = torch.cat([a * W_pos @ plant.C @ plant.F,
                        A_h + a * W_pos @ plant.C @ plant.B @ agent.W_out], -1)
    return torch.cat([top, bottom], -2)


def closed_loop_rates(agent: TrackingRNN, plant: PointMass) -> np.ndarray:
    """log(eig(M)) / dt (*batch_shape, 4+N) complex, in 1/s, least stable first: the
    continuous-time rates of the unclamped closed loop's modes (real part > 0: it grows)."""
    with torch.no_grad():
        ev = torch.linalg.eigvals(closed_loop_matrix(agent, plant)).cpu().numpy()
    rates = np.log(ev.astype(complex)) / plant.dt
    return np.take_along_axis(rates, np.argsort(-rates.real, axis=-1, kind="stable"), -1)


class Response:
    """Complex responses Y (*E, K, T+1, 6) (columns ``OUTPUTS``, rows t = 0..T) of the
    unclamped loop to sinusoid k's input rho_k e_{a_k} (as ``scoring`` feeds it), and the
    errors E (*E, K, T, 2) = Y[1..T, pos] - targets (rows t = 1..T, each position against
    the reference the scoring pairs it with); E: the ensemble axis of an ensemble's response
    (absent for one network)."""

    def __init__(self, Y: torch.Tensor, scoring: Scoring):
        self.Y, self.scoring, self.refs = Y, scoring, scoring.refs
        self.err = Y[..., 1:, POS] - scoring.targets
        self._worst = self._probe = None

    def probe_losses(self) -> torch.Tensor:
        """Exact per-sinusoid losses power_k (1/T) sum_t ||E_k(t)||^2, (*E, K) (power_k =
        scale A_k^2/2); computed once (training reads them for the loss and the record)."""
        if self._probe is None:
            self._probe = self.scoring.power * _sq(self.err).sum(-1).mean(-1)
        return self._probe

    def expected_loss(self) -> torch.Tensor:
        """The loss averaged over random phases: the sum of the probe losses, (*E,)."""
        return self.probe_losses().sum(-1)

    def combine(self, phases, which=None, part="err") -> torch.Tensor:
        """Real trajectories Re sum_k c_k Y_k for phases (B, K) or (*E, B, K): 'err' -> errors
        (*E, B, T, 2) at t = 1..T, 'all' -> every output (*E, B, T+1, 6) at t = 0..T."""
        return _recombine(self.refs.coefficients(phases, which),
                          self.err if part == "err" else self.Y)

    def sampled_losses(self, phases, which=None) -> torch.Tensor:
        """Per-reference losses (*E, B) of the unclamped loop."""
        return self.scoring.scale * _quadratic_losses(self.refs.coefficients(phases, which),
                                                      self.err)

    def transient_share(self, seconds: float) -> torch.Tensor:
        """The fraction of each probe loss incurred at times t dt <= ``seconds``, (*E, K)."""
        sq = _sq(self.err.detach()).sum(-1)                             # (*E, K, T)
        early = torch.arange(1, sq.shape[-1] + 1, device=sq.device) * self.refs.dt <= seconds
        return sq[..., early].sum(-1) / sq.sum(-1)

    def worst_state(self):
        """max over t, plant coordinate and every choice of phases of |q|: sum_k A_k |Y_k|, a
        float (an array (E,) for an ensemble). The clamp is inactive for every reference iff
        this is <= the plant's bound."""
        worst = self._worst_states()
        return float(worst) if worst.dim() == 0 else worst.cpu().numpy()

    def _worst_states(self) -> torch.Tensor:
        if self._worst is None:
            with torch.no_grad():
                mod = self.Y[..., :4].abs()                             # (*E, K, T+1, 4)
                self._worst = (self.refs.A[:, None, None] * mod).sum(-3).amax((-2, -1))
        return self._worst


def _sq(z: torch.Tensor) -> torch.Tensor:
    return z.real ** 2 + z.imag ** 2


def _recombine(c: torch.Tensor, Y: torch.Tensor) -> torch.Tensor:
    """Re sum_k c_bk Y_k: c (..., B, K) complex, Y (..., K, T, o) complex -> (..., B, T, o)
    real (leading axes broadcast)."""
    T, o = Y.shape[-2:]
    out = c.real @ Y.real.flatten(-2) - c.imag @ Y.imag.flatten(-2)
    return out.unflatten(-1, (T, o))


def _quadratic_losses(c: torch.Tensor, E: torch.Tensor) -> torch.Tensor:
    """(1/T) sum_t ||Re sum_k c_bk E_k(t)||^2 for every b, c (..., B, K), E (..., K, T, o)
    complex (leading axes broadcast) -> (..., B).

    With z_b = (Re c_b, Im c_b) and V = (Re E; -Im E) flattened to (2K, T o), the loss is the
    quadratic form z_b (V V^T / T) z_b^T: one 2K x 2K Gram matrix instead of B trajectories.
    """
    T = E.shape[-2]
    V = torch.cat([E.real.flatten(-2), -E.imag.flatten(-2)], -2)
    z = torch.cat([c.real, c.imag], -1)
    return ((z @ (V @ V.transpose(-1, -2) / T)) * z).sum(-1)


@single_thread()
def linear_response(agent: TrackingRNN, plant: PointMass, refs: Sinusoids,
                    convention=None) -> Response:
    """The K complex trajectories of the unclamped closed loop at t = 0..T (differentiable in
    the network's tensors), scored under ``convention`` (default the authors'); of every
    member of an ensemble at once.

    s_t = sum_{j <= t} M^{t-j} G in_j with in_j the scoring's input sequence (whose t = 0 term
    is zero unless the network reads t = 0): a convolution with H_s = C M^s G, s = 0..T.
    """
    _check_refs(plant, refs)
    scoring = refs.scoring(convention)
    M = closed_loop_matrix(agent, plant)
    N, E = agent.N, agent.batch_shape
    z = lambda *shape: M.new_zeros(*E, *shape)
    C = torch.cat([torch.cat([torch.eye(4, dtype=M.dtype, device=M.device).expand(*E, 4, 4),
                              z(4, N)], -1),
                   torch.cat([z(2, 4), agent.W_out], -1)], -2)   # (*E, 6, d): q, u = W_out h
    G = torch.cat([z(4, 2), agent.alpha * agent.W_in[..., 2:]], -2)  # (*E, d, 2): r enters h
    H = _impulse_response(C, M, G, refs.T + 1)                        # (T+1, *E, 6, 2)
    return Response(_causal_conv(H, scoring.inputs_fft), scoring)


def sampled_losses(agent, plant, refs, phases, which=None, response=None, convention=None
                   ) -> torch.Tensor:
    """Per-reference losses (*E, B) of the clamped plant for the phases (B, K), or (E, B, K)
    (one batch per member of an ensemble), scored under ``convention`` (default the authors';
    a ``response`` given brings its own).

    Computed from the linear response when no state of the batch reaches the clamp (then it
    is the same number), by stepping the clamped loop otherwise.
    """
    if response is None:
        response = linear_response(agent, plant, refs, convention)
    return _sampled(agent, plant, refs, phases, which, response)[0]


def _sampled(agent, plant, refs, phases, which, resp, step=None):
    """(losses (*E, B), whether the clamp acted on any reference: a bool, or (E,) bools for an
    ensemble), scored as ``resp`` is. Only the references whose unclamped trajectory reaches
    the bound are stepped, and in an ensemble only those of the members ``step`` (E,) marks
    (default: all; the others, exact-mode members, keep their unclamped losses, which nothing
    uses)."""
    losses, sc = resp.sampled_losses(phases, which), resp.scoring
    E = agent.batch_shape
    none = torch.zeros(E, dtype=torch.bool, device=losses.device) if E else False
    if plant.bound is None or bool((resp._worst_states() <= plant.bound).all()):
        return losses, none
    with torch.no_grad():
        states = resp.combine(phases, which, part="all")[..., :4]
        hit = (states.abs() > plant.bound).flatten(-2).any(-1)           # (*E, B)
        if step is not None:
            hit &= step[:, None]
    if not hit.any():
        return losses, none
    phases, losses = torch.as_tensor(phases), losses.clone()
    if not E:
        r = refs.signal(phases[hit], which)
        losses[hit] = sc.losses(_rollout(agent, plant, r, sc.reads_first)["q"], r)
        return losses, True
    for k in hit.any(-1).nonzero().flatten().tolist():  # step each member's own references
        r = refs.signal((phases[k] if phases.dim() == 3 else phases)[hit[k]], which)
        losses[k, hit[k]] = sc.losses(_rollout(agent._view(k), plant, r, sc.reads_first)["q"],
                                      r)
    return losses, hit.any(-1)


def student_response(student: TrackingRNN, inputs_fft: torch.Tensor, L: int) -> torch.Tensor:
    """Controls (K, L, 2) complex of ``student`` driven open-loop by complex inputs (K, L, 4)
    at t = 0..L-1 (input t enters h_t, h_{-1} = 0), given as their FFT over time with
    ``_fft_len(L)`` points."""
    _single(student)
    a, N = student.alpha, student.N
    A_h = (1 - a) * torch.eye(N, dtype=student.W.dtype, device=student.W.device) + a * student.W
    H = _impulse_response(student.W_out, A_h, a * student.W_in, L)
    return _causal_conv(H, inputs_fft)


class _Teacher:
    """What the open-loop student sees and imitates: the teacher's inputs and controls at
    t = 0..T, driving its own plant, scored by ``scoring``."""

    def __init__(self, teacher, plant, refs, scoring: Scoring):
        with torch.no_grad():
            resp = linear_response(teacher, plant, refs, scoring.convention)
            self.worst = resp.worst_state()
            # (x, y, r_x, r_y) at t = 0..T; the positions at t = 0 are 0
            inputs = torch.cat([resp.Y[..., POS], scoring.inputs], -1)
            self.inputs_fft = torch.fft.fft(inputs, n=_fft_len(refs.T + 1), dim=1)
            self.u = resp.Y[..., scoring.rows, 4:]                     # the imitated rows
        self.teacher, self.plant, self.refs, self.scoring = teacher, plant, refs, scoring

    def losses(self, student, phases=None):
        """Imitation losses from one response of the student: (exact phase average, per-
        reference losses (B,) for ``phases`` or None, whether the clamp acted on the
        teacher's plant)."""
        sc = self.scoring
        d = student_response(student, self.inputs_fft, self.refs.T + 1)[..., sc.rows, :] - self.u
        expected = sc.twin_scale * (self.refs.reference_power() * _sq(d).sum(-1).mean(-1)).sum()
        if phases is None:
            return expected, None, False
        if self.plant.bound is not None and self.worst > self.plant.bound:
            r = self.refs.signal(phases)
            with torch.no_grad():
                out = _rollout(self.teacher, self.plant, r, sc.reads_first)
            if out["q"].abs().max() >= self.plant.bound:  # the clamp acted: step the student
                u = _open_loop_controls(student, out["inputs"], sc.reads_first)
                return expected, sc.imitation(u, out["u"]), True
        return expected, sc.twin_scale * _quadratic_losses(self.refs.coefficients(phases), d), \
            False


# -- training ---------------------------------------------------------------------------------
@single_thread()
def train_tracking(agent: TrackingRNN, plant: PointMass | None = None,
                   refs: Sinusoids | None = None, *, epochs: int = 5000, lr: float = 1e-3,
                   batch: int = 100, mode: str = "sampled", teacher: TrackingRNN | None = None,
                   seed=0, test_seed: int = 12345, n_test: int = 100,
                   test_every: int = 25, record_every: int = 10, convention=None) -> History:
    """Train ``agent`` in place with Adam (no clipping); return its History.

    ``convention`` (a ``conventions.TrackingConvention``, its name, or None: the authors',
    ``PAPER_TRACKING``) says how errors are paired and weighted, whether the twin trains W_in
    and whether epoch 0 updates; every loss recorded is in its units (``Scoring``).
    ``epochs`` counts updates.

    Closed-loop (``teacher=None``): the loss is the tracking loss of the clamped plant, on a
    fresh batch of ``batch`` random-phase references per epoch (``mode='sampled'``, the paper)
    or its exact phase average (``mode='exact'``: the linear loop, deterministic gradient);
    W_in stays fixed. Open-loop twin (``teacher`` given): the agent imitates the teacher's
    controls while the teacher drives the plant, on the same inputs (x, y, r_x, r_y); under
    the authors' convention it trains W_in as well.

    History arrays, one row per epoch (row e: the network whose loss epoch e computed; with
    no update at epoch 0, the authors', rows 0 and 1 are both the initial network and the
    final network is row epochs + 1; else row e is the network after e updates):
    ``epoch``; ``loss`` (the train loss of the batch); ``expected_loss`` (its phase
    average); ``test_loss`` at ``test_epoch``: closed-loop tracking loss of the clamped plant
    on ``n_test`` fixed references (drawn from ``test_seed``), at every epoch below 100 and
    every ``test_every`` epochs after (a runaway loop must be stepped, which costs far more
    than an update); ``probe_loss`` (E, K) at ``probe_epoch``: per-sinusoid exact closed-loop
    losses, and ``worst_state``: sup over phases of |state| of the unclamped loop, at every
    epoch in closed-loop training and at the test epochs of a twin (whose own closed loop
    nothing else needs); ``clamped``: whether the train batch reached the clamp. Every ``record_every`` epochs
    (and at the end): ``eig_epoch``, ``eig_W`` (R, N) = eig(W - I)/tau, ``spectral_radius``
    (R,) of the unclamped closed loop (max |eig(M)|; > 1: it runs away), ``snapshot_epoch``,
    ``params/W``, ``params/W_out``, ``params/W_in``. Divergence or Ctrl-C stop training with
    the history so far; any other error carries it as its ``history`` attribute.

    An ensemble (``TrackingRNN.stack``) trains its members as independent closed-loop runs
    in one computation (Adam acts elementwise, so each member's update is its own); ``seed``
    may then give one seed per member (each draws its own batches, as its run alone would)
    and ``mode`` one mode per member; every array gets a member axis after the epoch axis
    (``History.member(k)`` takes one run out). A non-finite loss in any member stops all.
    Introduced in Chapter 4, section "Training".
    """
    plant = PointMass() if plant is None else plant
    refs = Sinusoids() if refs is None else refs
    _check_pair(agent, plant)
    _check_refs(plant, refs)
    scoring = refs.scoring(convention)
    conv = scoring.convention
    members = agent.batch_shape[0] if agent.batch_shape else None
    if teacher is not None:
        _check_pair(teacher, plant, "teacher")
        _single(teacher, "teacher")
        _single(agent, "agent (an open-loop twin)")
    seeds = _per_member("seed", seed, members, lambda n, v: _checks.integer(n, v, low=0,
                                                                             high=2**64 - 1),
                        "one integer")
    modes = _per_member("mode", mode, members, lambda n, v: _checks.choice(n, v, MODES),
                        f"one of {list(MODES)}")
    exact = torch.tensor([m == "exact" for m in modes], device=plant.F.device)
    epochs = _checks.integer("epochs", epochs, low=0)
    lr = _checks.real("lr", lr, low=0.0, low_open=True)
    batch = _checks.integer("batch", batch, low=1)
    n_test = _checks.integer("n_test", n_test, low=1)
    record_every = _checks.integer("record_every", record_every, low=1)
    test_every = _checks.integer("test_every", test_every, low=1)
    test_seed = _checks.integer("test_seed", test_seed, low=0, high=2**64 - 1)
    _checks.fits_memory(f"batch={batch}, n_test={n_test}, T={refs.T}, N={agent.N} (stepped "
                        f"episodes)", (batch + n_test) * (refs.T + 1) * (agent.N + 10)
                        * (members or 1))
    config = dict(kind="tracking", agent=repr(agent), plant=repr(plant), refs=repr(refs),
                  epochs=epochs, lr=lr, batch=batch, mode=modes if members else modes[0],
                  open_loop=teacher is not None,
                  seed=seeds if members else seeds[0], test_seed=test_seed, n_test=n_test,
                  dt=agent.dt, tau=agent.tau, **scoring.config())
    gens = [make_generator(s) for s in seeds]

    def train_phases():  # (B, K), or (members, B, K): each member from its own generator
        if members is None:
            return refs.sample_phases(batch, gens[0])
        return torch.stack([refs.sample_phases(batch, g) for g in gens])

    test_phases = refs.sample_phases(n_test, make_generator(test_seed))
    teach = None if teacher is None else _Teacher(teacher, plant, refs, scoring)
    params = agent.parameters(W_in=teach is not None and scoring.twin_trains_W_in)
    opt = torch.optim.Adam(params, lr=lr)
    # the final network's row: with no update at epoch 0, epochs updates take epochs + 2 rows
    last = epochs if scoring.update_at_epoch0 or not epochs else epochs + 1
    rows: list[dict] = []  # one dict per epoch, appended whole (Ctrl-C leaves no partial row)
    message, start, e = "", time.perf_counter(), 0
    try:
        for e in range(last + 1):
            update = e < last and (e > 0 or scoring.update_at_epoch0)
            tested = e < 100 or e % test_every == 0 or e == last
            resp = None  # a twin needs its own closed loop only for the test and probe losses
            if teach is None or tested:
                with torch.set_grad_enabled(update and teach is None):
                    resp = linear_response(agent, plant, refs, conv)
            clamped = torch.zeros_like(exact) if members else False
            if teach is not None:
                with torch.set_grad_enabled(update):
                    phases = None if mode == "exact" else train_phases()
                    expected, per, clamped = teach.losses(agent, phases)
                    loss = expected if mode == "exact" else per.mean()
            else:
                expected = resp.expected_loss()
                if exact.all():
                    loss = expected
                else:
                    with torch.set_grad_enabled(update):
                        per, clamped = _sampled(agent, plant, refs, train_phases(), None, resp,
                                                step=~exact if members else None)
                    loss = per.mean(-1)  # (members,): the sum's gradient is each member's
                    if exact.any():  # exact members train on their expected loss
                        loss = torch.where(exact, expected, loss)
            if update:
                opt.zero_grad(set_to_none=True)
                loss.sum().backward()
                grads = [p.grad for p in params]
            if not (torch.isfinite(loss).all() and (not update or all(torch.isfinite(g).all()
                                                                       for g in grads))):
                message = _stopped(e, rows[-1]["loss"] if rows else None)
                break
            row = {"epoch": e, "loss": loss.detach(), "expected_loss": expected.detach(),
                   "clamped": clamped}
            if resp is not None:
                row.update(probe_epoch=e, probe_loss=resp.probe_losses(),
                           worst_state=resp.worst_state())
            if tested:
                with torch.no_grad():
                    test = sampled_losses(agent, plant, refs, test_phases, response=resp)
                row.update(test_epoch=e, test_loss=test.mean(-1))
            if e % record_every == 0 or e == last:
                with torch.no_grad():
                    rho = torch.linalg.eigvals(closed_loop_matrix(agent, plant)).abs().amax(-1)
                row.update({"eig_epoch": e, "eig_W": agent.rate_eigenvalues(),
                            "spectral_radius": rho, "snapshot_epoch": e},
                           **{f"params/{k}": v for k, v in agent.snapshot().items()})
            rows.append({k: v.detach().cpu().numpy().copy() if torch.is_tensor(v) else v
                         for k, v in row.items()})
            if update:
                opt.step()
    except KeyboardInterrupt:
        message = _interrupted(e, len(rows))
    except Exception as exc:
        _attach_history(exc, e, lambda message: History(config, _stack_rows(rows), message,
                                                        time.perf_counter() - start))
        raise
    if message:
        warnings.warn(message, RuntimeWarning, stacklevel=2)
    return History(config, _stack_rows(rows), message, time.perf_counter() - start)


def _per_member(name: str, value, members, check, what: str) -> list:
    """One value per ensemble member, each passed through ``check(name, v)``: a list or
    tuple of ``members`` values, or one value that serves every member (or the only run
    when ``members`` is None). ``what`` describes a single value in the error."""
    if isinstance(value, (list, tuple)):
        if members is None or len(value) != members:
            raise ValueError(f"{name} must be {what}, or one per member of an ensemble "
                             f"({members or 'none here'}), got {_checks.short(value)}")
        return [check(f"{name}[{k}]", v) for k, v in enumerate(value)]
    return [check(name, value)] * (members or 1)


# -- reading a history ------------------------------------------------------------------------
def running_median(x, window: int) -> np.ndarray:
    """Centred running median of x (E,) over ``window`` (odd) epochs, truncated at the ends."""
    window = _checks.integer("window", window, low=1)
    if window % 2 == 0:
        raise ValueError(f"window must be odd, got {window}")
    x = _checks.real_tensor("x", x).detach().numpy()
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"x must be 1-d and not empty (one value per epoch), got shape "
                         f"{x.shape}")
    half = window // 2
    padded = np.pad(x, half, constant_values=np.nan)
    return np.nanmedian(np.lib.stride_tricks.sliding_window_view(padded, window), axis=-1)


def acquisition_epoch(epochs, loss, threshold: float, window: int = 51) -> int | None:
    """First epoch from which the running median of ``loss`` stays below ``threshold``.

    The median over ``window`` epochs ignores excursions shorter than half the window (a
    lucky dip before acquisition, a noisy spike after it); None: never acquired.
    Introduced in Chapter 4, section "Acquisition".
    """
    threshold = _checks.real("threshold", threshold, low=0.0, low_open=True)
    loss = _checks.real_tensor("loss", loss).detach().numpy()
    if loss.ndim != 1 or loss.size == 0 or np.shape(epochs) != loss.shape:
        raise ValueError(f"epochs and loss must be 1-d of equal, non-zero length, got "
                         f"{np.shape(epochs)} and {loss.shape}")
    return settles(epochs, running_median(loss, window) < threshold)


def acquisition_epochs(history: History, refs: Sinusoids, fraction: float = 0.5,
                       window: int = 51, first: bool = False) -> list:
    """Acquisition epoch of every sinusoid (in the order of ``refs``): the first epoch from
    which its probe loss stays below ``fraction`` x its reference power (``Scoring.power``:
    A_k^2/2 in the history's units, the loss of doing nothing). ``first=True``: the first
    epoch at which it gets there, even if it is lost again later (the two differ when a
    frequency is forgotten for a while). Introduced in Chapter 4, section "Acquisition".
    """
    fraction = _checks.real("fraction", fraction, low=0.0, low_open=True, high=1.0)
    _check_type("refs", refs, Sinusoids)
    _history_with(history, "probe_loss", refs.K)
    thr = fraction * history_scoring(history, refs).power.cpu().numpy()
    epochs = probe_epochs(history)
    out = []
    for k in range(refs.K):
        if first:
            below = running_median(history.probe_loss[:, k], window) < thr[k]
            out.append(int(epochs[np.argmax(below)]) if below.any() else None)
        else:
            out.append(acquisition_epoch(epochs, history.probe_loss[:, k], thr[k], window))
    return out


def probe_epochs(history: History) -> np.ndarray:
    """The epochs of a history's probe losses (every epoch of a closed-loop run, the test
    epochs of a twin; a history saved before they were listed has them at every epoch)."""
    _history_with(history, "probe_loss")
    return history.arrays.get("probe_epoch", history.epoch)


def probe_at(history: History, epoch: int) -> np.ndarray:
    """The probe losses (K,) at the first epoch at or after ``epoch`` that recorded them (the
    last if none)."""
    epochs = probe_epochs(history)
    epoch = _checks.integer("epoch", epoch, low=0)
    return history.probe_loss[min(int(np.searchsorted(epochs, epoch)), len(epochs) - 1)]


def in_order(epochs) -> bool:
    """Whether acquisition epochs (listed low to high frequency, None: never) come in order of
    frequency: the acquired ones non-decreasing, and every None after them."""
    if not isinstance(epochs, (list, tuple)):
        raise TypeError(f"epochs must be a list of epochs (or None), got {_checks.short(epochs)}")
    got = [e for e in epochs if e is not None]
    return got == sorted(got) and list(epochs[:len(got)]) == got


def normalized(epochs, length) -> list:
    """Acquisition epochs divided by the training length ``length`` (epochs run); None stays
    None. Introduced in Chapter 4, section "Compared with people"."""
    length = _checks.real("length", length, low=0.0, low_open=True)
    if not isinstance(epochs, (list, tuple)):
        raise TypeError(f"epochs must be a list of epochs (or None), got {_checks.short(epochs)}")
    return [None if e is None else e / length for e in epochs]


def excursion(history: History) -> dict:
    """The course of a history's closed-loop test loss: ``start`` (epoch 0), ``peak`` and
    ``peak_epoch`` (its largest value and the first epoch that reaches it), ``final`` (the
    last recorded) and ``recovered`` (final < peak / 2). Introduced in Chapter 4, section
    "Open-loop twin"."""
    _history_with(history, "test_loss")
    loss = np.asarray(history.test_loss, dtype=float)
    if loss.ndim != 1:
        raise ValueError(f"history must be one run (take an ensemble's member), got test_loss "
                         f"of shape {loss.shape}")
    i = int(np.argmax(loss))
    return dict(start=float(loss[0]), peak=float(loss[i]),
                peak_epoch=int(history.test_epoch[i]), final=float(loss[-1]),
                recovered=bool(loss[-1] < loss[i] / 2))


def largest_frequency(history: History, epochs) -> list:
    """The largest imaginary part of eig(W - I)/tau (rad/s) at the first recorded epoch at or
    after each of ``epochs`` (None stays None)."""
    _history_with(history, "eig_W")
    if not isinstance(epochs, (list, tuple)):
        raise TypeError(f"epochs must be a list of epochs (or None), got {_checks.short(epochs)}")
    out = []
    for k, e in enumerate(epochs):
        if e is None:
            out.append(None)
            continue
        e = min(_checks.integer(f"epochs[{k}]", e, low=0), int(history.eig_epoch[-1]))
        i = min(int(np.searchsorted(history.eig_epoch, e)), len(history.eig_epoch) - 1)
        out.append(float(history.eig_W[i].imag.max()))
    return out


def agent_at(history: History, epoch: int, agent: TrackingRNN | None = None
             ) -> tuple[int, TrackingRNN]:
    """The network of the first snapshot at or after ``epoch``: returns (its epoch, the
    network). W_in comes from the history's snapshot where recorded (the authors' twin trains
    it), else from ``agent``; dt and tau from ``agent`` if given, else from the history's
    config, so a loaded history rebuilds its networks alone."""
    _history_with(history, "snapshot_epoch")
    # epochs beyond the last snapshot read the last (and cannot overflow int64)
    epoch = min(_checks.integer("epoch", epoch, low=0), int(history.snapshot_epoch[-1]))
    if agent is not None:
        _check_type("agent", agent, TrackingRNN)
    i = min(int(np.searchsorted(history.snapshot_epoch, epoch)), len(history.snapshot_epoch) - 1)
    if agent is None:
        if "params/W_in" not in history.arrays or "tau" not in history.config:
            raise ValueError("this history does not record W_in and tau (saved before they "
                             "were recorded): pass the agent it was trained from")
        dt, tau = history.config["dt"], history.config["tau"]
    else:
        dt, tau = agent.dt, agent.tau
    W_in = (torch.tensor(history.arrays["params/W_in"][i]) if "params/W_in" in history.arrays
            else agent.W_in.detach())
    net = TrackingRNN.from_tensors(torch.tensor(history.arrays["params/W"][i]), W_in,
                                   torch.tensor(history.arrays["params/W_out"][i]), dt, tau)
    return int(history.snapshot_epoch[i]), net


def frequency_match(rate_eigs, omega) -> np.ndarray:
    """|omega_k - Im lambda| for the eigenvalue lambda of eig(W - I)/tau (given, complex) whose
    imaginary part is closest to each target omega_k (rad/s): (K,)."""
    try:
        ev = np.asarray(rate_eigs.detach() if torch.is_tensor(rate_eigs) else rate_eigs,
                        dtype=complex)
    except (TypeError, ValueError):
        raise TypeError(f"rate_eigs must be complex numbers, got {_checks.short(rate_eigs)}"
                        ) from None
    if ev.ndim != 1 or ev.size == 0 or not np.isfinite(ev).all():
        raise ValueError(f"rate_eigs must be a non-empty 1-d array of finite eigenvalues, got "
                         f"{_checks.short(rate_eigs)}")
    omega = _checks.real_tensor("omega", omega).numpy()
    if omega.ndim != 1:
        raise ValueError(f"omega must be 1-d, got shape {omega.shape}")
    im = np.abs(ev.imag)
    return np.abs(im[None, :] - omega[:, None]).min(-1)


def _check_pair(agent, plant, name="agent"):
    _check_type(name, agent, TrackingRNN)
    _check_type("plant", plant, PointMass)
    if not math.isclose(agent.dt, plant.dt):
        raise ValueError(f"{name} dt={agent.dt} and plant dt={plant.dt} must agree")
    if agent.W.device != plant.F.device:
        raise ValueError(f"{name} is on {agent.W.device} and the plant on {plant.F.device}: "
                         f"build both with the same device=")


def _history_with(history, name, columns=None):
    """TypeError/ValueError unless ``history`` is a History recording ``name`` (with
    ``columns`` entries per row, if given)."""
    _check_type("history", history, History)
    if name not in history.arrays:
        raise ValueError(f"history records no {name!r} (a tracking history has it)")
    a = history.arrays[name]
    if columns is not None and (a.ndim != 2 or a.shape[1] != columns):
        raise ValueError(f"history's {name} must have {columns} columns (one per sinusoid of "
                         f"refs), got shape {a.shape}")


def _single(agent, name="agent"):
    if agent.batch_shape:
        raise ValueError(f"{name} must be one network here, got an ensemble "
                         f"{agent.batch_shape}: take a member (agent.member(k))")


def _check_type(name, value, kind):
    if not isinstance(value, kind):
        raise TypeError(f"{name} must be a {kind.__name__}, got {_checks.short(value)}")


def _check_refs(plant, refs):
    _check_type("plant", plant, PointMass)
    _check_type("refs", refs, Sinusoids)
    if not math.isclose(refs.dt, plant.dt):
        raise ValueError(f"refs dt={refs.dt} and plant dt={plant.dt} must agree")
    if refs.A.device != plant.F.device:
        raise ValueError(f"refs are on {refs.A.device} and the plant on {plant.F.device}: "
                         f"build both with the same device=")
