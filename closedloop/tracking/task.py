"""The tracking task (paper s.7): the plant (a 2-D point mass), the references (sums of
sinusoids with random phases) and how a trajectory is scored (``Scoring``, the one place a
``TrackingConvention`` is read).

Units: time in seconds (one step = dt = 0.1 s), frequencies in Hz, angular frequencies in
rad/s. Shapes: plant states q (..., 4) = (x, vx, y, vy); controls u (..., 2) = (ax, ay);
references r (T+1, B, 2) at t = 0..T; K sinusoids, B references per batch. Trajectories
are time first, as everywhere in the package (``coupled.rollout``): (T+1, B, ...).

Loss of an episode (``conventions.TrackingConvention``, applied by ``Scoring``):
L = scale (1/T) sum_{t=1..T} ||p_t - r_{t - offset}||^2, p = (x, y), summed over the two axes;
the authors' (default) pair the position reached with the reference shown (offset 1) and
weight each step by dt (scale dt); the book's earlier scoring has offset 0 and scale 1.
Introduced in Chapter 4, section "The task".
"""

from __future__ import annotations

import math

import torch

from .. import _checks, conventions
from ..envs import DTYPE
from ..history import History
from ..linsys import abs2, fft_length, ramp_taps

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
        self.env = (t / self.ramp).clamp(max=1.0) if self.ramp > 0 else torch.ones_like(t)
        self.carrier = torch.exp(1j * self.omega[:, None] * t)       # (K, T+1) complex
        self.rho = self.env * self.carrier                            # (K, T+1) complex
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
        CPU generators) and placed on the references' device. Drawn in float64 whatever the
        references' format, then rounded to it: a seed gives the same references in float32
        as in float64 (torch.rand in float32 draws other numbers from the same generator)."""
        batch = _checks.integer("batch", batch, low=1)
        u = torch.rand(batch, self.K, generator=generator, dtype=torch.float64,
                       device=generator.device)
        return ((2 * u - 1) * math.pi).to(self.A.device, self.dtype)

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
        """The references (T+1, B, 2) at t = 0..T (positions, time first) for phases (B, K);
        ``which``: indices of the sinusoids to include (default all; ``[k]`` is the probe of
        sinusoid k)."""
        c = self.coefficients(phases, which)
        if c.dim() != 2:
            raise ValueError(f"phases must have shape (B, {self.K}) here, got "
                             f"{tuple(c.shape)}")
        per = (c[:, :, None] * self.rho).real                         # (B, K, T+1)
        r = torch.zeros(self.T + 1, c.shape[0], 2, dtype=self.dtype, device=c.device)
        for k, a in enumerate(self.axes):
            r[..., a] += per[:, k].T
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
      2 (T+1) points; ``taps``, ``cols``, ``rot``: the same inputs as weighted sinusoids
      (``linsys.sinusoid_conv``; ``taps`` None for a ramp too long for it); ``targets``
      (K, T, 2): rho_k(t - offset) e_{a_k} for t = 1..T.
    - ``power`` (K,): scale A_k^2/2, the loss of a probe when the network does nothing (after
      the ramp): the unit of the acquisition thresholds.
    """

    def __init__(self, refs: Sinusoids, convention=None):
        _checks.instance("refs", refs, Sinusoids)
        self.refs = refs
        for name, value in read_convention(convention, refs.dt).items():
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
        self.inputs_fft = torch.fft.fft(seq, n=fft_length(T + 1), dim=1)
        # the same inputs as weighted sinusoids, for ``linsys.sinusoid_conv``
        weight = refs.env.clone()
        if not self.reads_first:
            weight[0] = 0
        self.taps = ramp_taps(weight)
        self.cols = torch.tensor(refs.axes, device=seq.device)
        self.rot = refs.carrier.conj()
        self.power = self.scale * refs.reference_power()

    def silent_losses(self) -> torch.Tensor:
        """power_k (1/T) sum_{t=1..T} ramp(t - offset)^2 (K,): each probe's exact loss when the
        mass stays at the origin."""
        return self.power * abs2(self.targets).sum(-1).mean(-1)

    def losses(self, q: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        """scale (1/T) sum_{t=1..T} ||p_t - r_{t - offset}||^2 per reference: q (T+1, B, 4) and
        r (T+1, B, 2) at t = 0..T -> (B,). Unchecked: a loop that blew up must reach
        training's divergence stop."""
        return scored_losses(q, r, self.scale, self.offset)

    def imitation(self, u: torch.Tensor, u_teacher: torch.Tensor) -> torch.Tensor:
        """twin_scale (1/T) sum_{t in rows} ||u_t - u_teacher_t||^2 per reference: controls
        (T+1, B, 2) at t = 0..T -> (B,)."""
        d = u[self.rows] - u_teacher[self.rows]
        return self.twin_scale * time_mean((d ** 2).sum(-1))

    def config(self) -> dict:
        """What a History records of the convention (``history_scoring`` reads it back)."""
        c = self.convention
        return dict(convention=c.name, pairing=c.pairing, dt_weight=c.dt_weight,
                    twin_axes=c.twin_axes, update_at_epoch0=c.update_at_epoch0,
                    twin_trains_W_in=c.twin_trains_W_in, loss_scale=self.scale)

    def __repr__(self):
        return f"Scoring({self.convention.describe()})"


def read_convention(convention, dt: float) -> dict:
    """The one place a ``TrackingConvention`` (or its name, or None: the authors') is read:
    the attributes of a ``Scoring`` that do not depend on the references (dt: the step)."""
    conv = conventions.resolve_tracking(convention)
    shown = conv.pairing == "shown"
    return dict(convention=conv, reads_first=shown, offset=int(shown),
                scale=dt if conv.dt_weight else 1.0,
                twin_scale=0.5 if conv.twin_axes == "mean" else 1.0,
                update_at_epoch0=conv.update_at_epoch0, twin_trains_W_in=conv.twin_trains_W_in)


def scored_losses(q, r, scale, offset):
    """scale (1/T) sum_{t=1..T} ||p_t - r_{t - offset}||^2: q (T+1, B, 4), r (T+1, B, 2) ->
    (B,), unchecked (a loop that blew up must reach training's divergence stop)."""
    T = q.shape[0] - 1
    err = q[1:, ..., POS] - r[1 - offset:T + 1 - offset]
    return scale * time_mean((err ** 2).sum(-1))


def time_mean(x: torch.Tensor) -> torch.Tensor:
    """The mean over time of x (T, B) -> (B,), each reference's T values reduced together in
    memory: a mean over the strided time axis rounds differently in the last bits, and the
    losses recorded by training and the book's numbers were made this way."""
    return x.T.contiguous().mean(-1)


def history_scoring(history: History, refs: Sinusoids) -> Scoring:
    """The Scoring a tracking History was trained under, for ``refs`` (a history saved before
    conventions were recorded was scored the book's way)."""
    _checks.instance("history", history, History)
    c = history.config
    if "pairing" not in c:
        return refs.scoring(conventions.BOOK_TRACKING)
    conv = conventions.TrackingConvention(
        c["pairing"], bool(c["dt_weight"]), c["twin_axes"], bool(c["update_at_epoch0"]),
        bool(c["twin_trains_W_in"]), c["convention"])
    return refs.scoring(conv)


def check_refs(plant, refs) -> None:
    """TypeError/ValueError unless ``refs`` (Sinusoids) belong to ``plant`` (PointMass): the
    same dt, on the same device."""
    _checks.instance("plant", plant, PointMass)
    _checks.instance("refs", refs, Sinusoids)
    check_same_grid("refs", refs.dt, refs.A.device, plant, be="are", dtype=refs.dtype)


def check_same_grid(name: str, dt: float, device, plant, be: str = "is", dtype=None) -> None:
    """ValueError unless ``name`` (with its ``dt``, ``device`` and ``dtype``) steps on
    ``plant``'s time grid, device and number format (``be``: the verb its name takes in the
    message)."""
    if not math.isclose(dt, plant.dt):
        raise ValueError(f"{name} dt={dt} and plant dt={plant.dt} must agree")
    if device != plant.F.device:
        raise ValueError(f"{name} {be} on {device} and the plant on {plant.F.device}: "
                         f"build both with the same device=")
    if dtype is not None and dtype != plant.dtype:
        raise ValueError(f"{name} {be} {dtype} and the plant {plant.dtype}: build the "
                         f"network, the plant and the references with the same dtype")
