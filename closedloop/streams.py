"""Every random draw of the package, from one of two streams (``shared/paper.md`` section 10).

A seed says which numbers a run draws only together with a *stream*, the rule that turns the
seed into draws:

- ``'package'`` (the package's own): one CPU ``torch.Generator`` seeded with ``seed`` for a
  network's initial tensors, and a fresh one seeded with ``seed`` for each training's batches,
  so that ensembles (one generator per member) and sweeps are cheap and every member is the
  run it would be alone;
- ``'authors'``: the draws the authors' code makes after ``np.random.seed(seed);
  torch.manual_seed(seed)``, in their order: initial weights (and the rank-one and tracking
  batches) from numpy's legacy ``RandomState(seed)``, the tanh network's batches and
  white-noise inputs from a torch generator seeded with ``seed``, every draw made (unused
  ones too) and rounded to float32 as theirs were. The network and its trainings share the
  stream: a training continues where the network's draw stopped, and the open-loop student
  continues where its teacher's training stopped (``Stream.student``).

Computation stays in the chosen dtype either way. A ``Stream`` is what agents
(``seed=``), the tracking network and the trainings (``seed=``) accept besides a plain
integer, which means ``Stream(seed, 'package')``. Introduced in Chapter 2, section
"The setup" (what "seed s" means).
"""

from __future__ import annotations

import contextlib
import copy
import math

import numpy as np
import torch

from . import _checks

KINDS = ("package", "authors")
F32 = torch.float32  # the authors' torch draws are float32 whatever torch's default dtype


def make_generator(seed: int) -> torch.Generator:
    """A CPU generator seeded with ``seed`` (the package stream's one source of draws).

    Draws stay on the CPU and are moved to the device that uses them, so a seed gives the
    same networks and batches on every device."""
    seed = _checks.seed("seed", seed)
    return torch.Generator().manual_seed(seed)


class Stream:
    """The random draws of one run: ``Stream(seed, kind)`` with ``kind`` in ``KINDS``.

    Shapes follow the package's: vectors (N,), matrices (N, N) as the book writes them (the
    authors' transposed storage is undone here), batches of initial states (B, 2), white
    noise (T, B), tracking phases (B, K). Each method says what it draws in each stream.
    """

    def __init__(self, seed: int, kind: str = "package"):
        self.kind = _checks.choice("stream", kind, KINDS)
        if kind == "authors":  # numpy's legacy seeding takes 32 bits
            self.seed = _checks.integer("seed", seed, low=0, high=2**32 - 1)
            self._np = np.random.RandomState(self.seed)
            self._torch = make_generator(self.seed)
        else:
            self.seed = _checks.seed("seed", seed)
            self._batches = None  # the generator of the current training's batches

    def __repr__(self):
        return f"Stream({self.seed}, {self.kind!r})"

    @property
    def authors(self) -> bool:
        return self.kind == "authors"

    def copy(self) -> "Stream":
        """An independent stream at the same position."""
        return copy.deepcopy(self)

    # -- initial tensors -------------------------------------------------------------------
    def rnn(self, N: int, g: float, std: float, batch_shape: tuple, dtype):
        """A tanh/linear RNN's (W, m, z): W ~ N(0, g^2/N) (N, N), m, z ~ N(0, std^2) (N,).

        package: W, m, z as ``randn`` of one generator, scaled. authors: m (their ``Wih``,
        (1, N)), their ``Whh`` = g * normal(0, 1/sqrt(N), (N, N)) and z (``Who``, (N, 1)) from
        numpy, each rounded to float32; W = Whh^T."""
        if not self.authors:
            gen = make_generator(self.seed)
            W = torch.randn(*batch_shape, N, N, generator=gen, dtype=dtype)
            m = torch.randn(*batch_shape, N, generator=gen, dtype=dtype) * std
            z = torch.randn(*batch_shape, N, generator=gen, dtype=dtype) * std
            return scaled_draw("g", g, W, N), m, z
        self._single(batch_shape, "an RNN")
        m = self._np.normal(0, std, size=(1, N))
        whh = g * self._np.normal(0, 1 / math.sqrt(N), size=(N, N))
        z = self._np.normal(0, std, size=(N, 1))
        return _f32(whh.T, dtype), _f32(m[0], dtype), _f32(z[:, 0], dtype)

    def rank_one(self, N: int, uv_scale: float, init: str, batch_shape: tuple, dtype):
        """A rank-one network's (u, v, m, z), each (*batch_shape, N).

        u, v ~ N(0, uv_scale^2/N); m, z ~ U(-1/sqrt(N), 1/sqrt(N)) (``init='paper'``) or
        N(0, 1/N) ('gaussian'). package: u, v, then m, z from one generator. authors: m, z
        (uniform; normal for 'gaussian'), u, v (normal), then the (N, N) normal matrix their
        code multiplies by g = 0, drawn and unused, each rounded to float32."""
        if not self.authors:
            gen = make_generator(self.seed)
            normal = lambda name, scale: scaled_draw(
                name, scale, torch.randn(*batch_shape, N, generator=gen, dtype=dtype), N)
            u, v = normal("uv_scale", uv_scale), normal("uv_scale", uv_scale)
            if init == "paper":
                uniform = lambda: ((2 * torch.rand(*batch_shape, N, generator=gen, dtype=dtype)
                                    - 1) / math.sqrt(N))
                m, z = uniform(), uniform()
            else:
                m, z = normal("m", 1.0), normal("z", 1.0)
            return u, v, m, z
        self._single(batch_shape, "a rank-one network")
        a = 1 / math.sqrt(N)
        if init == "paper":
            m = self._np.uniform(-a, a, size=(N, 1))
            z = self._np.uniform(-a, a, size=(1, N))
        else:  # the same stream with the paper text's N(0, 1/N) in the uniforms' place
            m, z = self._np.normal(0, a, size=(N, 1)), self._np.normal(0, a, size=(1, N))
        u = self._np.normal(0, uv_scale * a, size=(N, 1))
        v = self._np.normal(0, uv_scale * a, size=(N, 1))
        self._np.normal(0, a, size=(N, N))  # their W's draw, times g = 0: it moves the stream
        if not all(np.isfinite(w).all() and np.abs(w).max() <= np.finfo(np.float32).max
                   for w in (u, v)):
            raise ValueError(f"uv_scale={uv_scale!r} is too large: the drawn weights overflow "
                             f"float32 (the authors' draws are rounded to float32)")
        return (_f32(u[:, 0], dtype), _f32(v[:, 0], dtype), _f32(m[:, 0], dtype),
                _f32(z[0], dtype))

    def tracking(self, N: int, g: float, dtype):
        """The tracking network's (W (N, N), W_in (N, 4), W_out (2, N)).

        W ~ N(0, g^2/N); W_in, W_out ~ U(-1/sqrt(N), 1/sqrt(N)). package: W, W_in, W_out
        from one generator. authors: a (4, N) normal matrix (discarded), W_in^T, W^T =
        g * normal(0, 1/sqrt(N)), a (N, 2) normal matrix (discarded), W_out^T, from numpy,
        rounded to float32."""
        a = 1 / math.sqrt(N)
        if not self.authors:
            gen, root = make_generator(self.seed), math.sqrt(N)
            W = torch.randn(N, N, generator=gen, dtype=dtype) * (g / root)
            W_in = (2 * torch.rand(N, 4, generator=gen, dtype=dtype) - 1) / root
            W_out = (2 * torch.rand(2, N, generator=gen, dtype=dtype) - 1) / root
            return W, W_in, W_out
        self._np.normal(0, 0.01, size=(4, N))
        w_in = self._np.uniform(-a, a, size=(4, N))
        w = g * self._np.normal(0, a, size=(N, N))
        self._np.normal(0, 0.01, size=(N, 2))
        w_out = self._np.uniform(-a, a, size=(N, 2))
        return _f32(w.T, dtype), _f32(w_in.T, dtype), _f32(w_out.T, dtype)

    # -- per-epoch draws of a training -----------------------------------------------------
    def start(self) -> "Stream":
        """Begin a training: package, a fresh batch generator at ``seed``; authors, the
        stream continues. Returns self."""
        if not self.authors:
            self._batches = make_generator(self.seed)
        return self

    def _gen(self):
        if self._batches is None:
            self.start()
        return self._batches

    def initial_states(self, box, batch: int, T: int, nonlinear: bool, dtype, device):
        """One batch of initial states x_0 ~ ``box``: (batch, 2) on ``device``.

        package: ``box.sample`` (a (batch, 2) uniform draw). authors, rank-one
        (``nonlinear=False``): positions then velocities, each numpy uniform(-w, w, (1, B));
        tanh: positions then velocities, each torch ``rand(B) * 2 - 1`` (times w), then the
        T zero-noise draws of their environment steps, ``normal`` (2, B) each. ``nonlinear``
        is the caller's: a tanh network's batches come from torch, a linear one's (rank-one,
        or a linear full-rank RNN, which the authors' code does not have) from numpy; the
        open-loop student's 'teacher' inputs, also not in their code, draw their starts as
        a tanh batch without the noise (T = 0)."""
        if not self.authors:
            return box.sample(batch, self._gen(), dtype, device)
        if len(box.half_width) != 2:
            raise ValueError(f"seed: the authors' stream draws the batches of their 2-state "
                             f"double integrator, not of a plant with n = "
                             f"{len(box.half_width)} states: use an integer seed (the package "
                             f"stream)")
        (w1, w2) = box.half_width
        if not nonlinear:
            x = self._np.uniform(-w1, w1, size=(1, batch))
            v = self._np.uniform(-w2, w2, size=(1, batch))
            return _f32(np.concatenate([x, v]).T, dtype).to(device)
        x, v = (torch.rand(batch, generator=self._torch, dtype=F32) * 2 - 1 for _ in range(2))
        for _ in range(T):
            torch.randn(2, batch, generator=self._torch, dtype=F32)
        w = torch.tensor([w1, w2], dtype=dtype)
        return (torch.stack([x, v], -1).to(dtype) * w).to(device)

    def process_noise(self, sigma: float, T: int, batch: int, n: int, dtype, device):
        """A plant's process noise w_0..w_{T-1} ~ N(0, sigma^2 I_n): (T, batch, n) on ``device``.

        package: ``sigma * randn(T, batch, n)`` from the batch generator, drawn after the
        epoch's initial states (so a noise-free plant's draws are those it always had).
        authors: refused (their code has no process noise; its zero-noise draws are part of
        the tanh batches, ``initial_states``)."""
        if self.authors:
            raise ValueError(f"noise={sigma}: the authors' stream has no process noise (their "
                             f"plant is noise-free); use an integer seed (the package stream)")
        w = torch.randn(T, batch, n, generator=self._gen(), dtype=dtype)
        return (sigma * w).to(device)

    def white_noise(self, T: int, batch: int, dtype, device):
        """An open-loop input sequence y_1..y_T ~ N(0, 1) i.i.d.: (T, batch) on ``device``.

        package: ``randn(T, batch)``. authors: their student epoch's ``rand(B)``, ``rand(B)``
        (unused) and ``randn(T, B)``, from torch."""
        if not self.authors:
            return torch.randn(T, batch, generator=self._gen(), dtype=dtype).to(device)
        torch.rand(batch, generator=self._torch, dtype=F32)
        torch.rand(batch, generator=self._torch, dtype=F32)
        return torch.randn(T, batch, generator=self._torch, dtype=F32).to(dtype).to(device)

    def phases(self, refs, batch: int):
        """One batch of reference phases ~ U(-pi, pi): (batch, K) on the references' device.

        package: ``refs.sample_phases``. authors: numpy uniform(-pi, pi, (B, 2)) for the x
        sinusoids, then the same for the y sinusoids (each axis' sinusoids in the order
        ``refs`` lists them), rounded to float32."""
        if not self.authors:
            return refs.sample_phases(batch, self._gen())
        out = np.empty((batch, refs.K))
        for axis in (0, 1):
            ks = [k for k, a in enumerate(refs.axes) if a == axis]
            if ks:
                out[:, ks] = self._np.uniform(-np.pi, np.pi, size=(batch, len(ks)))
        return _f32(out, refs.dtype).to(refs.A.device)

    @contextlib.contextmanager
    def lookahead(self):
        """Draws made inside leave the stream where it was: the final network is scored on
        the batch that would come next, a draw the authors' loop never makes."""
        saved = self.copy()
        try:
            yield self
        finally:
            self.__dict__.update(saved.__dict__)

    def student(self, T: int) -> "Stream":
        """The stream of an open-loop student trained after this stream's teacher.

        package: a fresh stream at the same seed (the student's batches are drawn anew).
        authors: a copy that continues the teacher's, past the draws their notebook makes
        between the two trainings (a rollout from ``rand(2, 1)`` with ``T`` zero-noise draws
        (2, 1); the numpy draws of a rebuilt controller only touch weights the student then
        overwrites)."""
        if not self.authors:
            return Stream(self.seed, self.kind)
        out = self.copy()
        torch.rand(2, 1, generator=out._torch, dtype=F32)
        for _ in range(T):
            torch.randn(2, 1, generator=out._torch, dtype=F32)
        return out

    def _single(self, batch_shape, what):
        if batch_shape:
            raise ValueError(f"the authors' stream draws one network at a time: draw {what} "
                             f"per seed and stack them (batch_shape={batch_shape})")


def stream(seed, kind: str = "package", name: str = "seed") -> Stream:
    """``seed`` as a Stream: a Stream as it is, an integer as ``Stream(seed, kind)``; anything
    else is an error naming the argument ``name``."""
    if isinstance(seed, Stream):
        return seed
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"{name} must be an integer seed or a streams.Stream, got "
                        f"{_checks.short(seed)}")
    return Stream(seed, kind)


def members(seed, batch_shape: tuple, kind: str = "package"):
    """The stream of every member: one Stream for one network or a shared one, or a list
    with one per member of a 1-axis ensemble (from a list of seeds or Streams)."""
    one = lambda name, v: v if isinstance(v, Stream) else Stream(_checks.seed(name, v), kind)
    out = _checks.members("seed", seed, batch_shape, one)
    if isinstance(out, list) and len(batch_shape) != 1:  # the draws stack along one axis
        raise ValueError(f"seed: one per member needs an ensemble of one axis, this one has "
                         f"batch_shape {tuple(batch_shape)}; give one seed for all")
    if isinstance(out, list) and len({id(s) for s in out}) < len(out):
        raise ValueError("seed lists the same Stream for two members: each member draws from "
                         "its own (use Stream.copy() for a copy)")
    return out


def drawer(stream, draw):
    """``f(e, last)``: epoch e's draw of a training, ``draw(s, k)`` for its one stream, or
    stacked over a list of streams (member k's draws are those of its run alone; a draw that
    is a tuple of tensors is stacked part by part). Starts
    each stream's training (``Stream.start``). The final network's row (e == last) is scored
    on the draws that would come next, made without moving the streams: the authors' loops
    draw nothing for it."""
    one = isinstance(stream, Stream)
    runs = [stream.start()] if one else [s.start() for s in stream]

    def f(e, last):
        with contextlib.ExitStack() as ahead:
            if e == last:
                for s in runs:
                    ahead.enter_context(s.lookahead())
            out = [draw(s, k) for k, s in enumerate(runs)]
        if one:
            return out[0]
        if isinstance(out[0], tuple):
            return tuple(torch.stack(part) for part in zip(*out))
        return torch.stack(out)
    return f


def describe(stream):
    """A training's seeds for its config, with their stream where it is not the package's:
    ``3``, ``[0, 1]``, ``{'seed': 3, 'stream': ['authors']}``."""
    one = isinstance(stream, Stream)
    runs = [stream] if one else stream
    seeds = runs[0].seed if one else [s.seed for s in runs]
    kinds = {s.kind for s in runs}
    return seeds if kinds == {"package"} else {"seed": seeds, "stream": sorted(kinds)}


def _f32(a, dtype) -> torch.Tensor:
    """A numpy draw rounded to float32 (as the authors' tensors were), then in ``dtype``."""
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)).to(dtype)


def scaled_draw(name, scale, draw, N):
    """draw * scale / sqrt(N), refusing a scale so large that the draw overflows."""
    out = draw * (scale / math.sqrt(N))
    if not torch.isfinite(out).all():
        raise ValueError(f"{name}={scale!r} is too large: the drawn weights overflow "
                         f"{draw.dtype}")
    return out
