"""The tracking losses: per reference from stepped trajectories, and exactly from the linear
loop's response to each sinusoid.

Exact mode. A reference is Re sum_k c_k rho_k(t) e_{a_k}, with c_k = A_k e^{i phi_k} and
rho_k(t) = ramp(t) e^{i omega_k t dt}, so every trajectory of the unclamped loop is
Re sum_k c_k Y_k(t), Y_k the complex response to rho_k on axis a_k. Averaged over independent
uniform phases, the cross terms vanish and

    E_phi L = sum_k scale (A_k^2 / 2) (1/T) sum_t ||E_k(t)||^2,
    E_k(t) = Y_k(t)[pos] - rho_k(t - offset) e_{a_k},

one term per sinusoid: the k-th is the probe loss of sinusoid k alone. Four complex
trajectories give the exact loss, the probe losses and (recombined with the phases) the
sampled loss of any batch. They are convolutions with the loop's impulse response C M^s G,
s = 0..T (``linsys``): for a ramped sinusoid a cumulative sum and the ramp's few taps
(``linsys.sinusoid_conv_gram``, which also forms the errors' Gram matrix), an FFT for a
ramp too long for that; no per-step Python loop. The pairing only shifts the targets
against the responses.

The clamp. sum_k A_k |Y_k(t)| is the largest |state| over all phases; while it stays within the
bound the clamp never acts and the linear computation is exact. Otherwise the sampled losses
step the clamped plant for the references that reach the bound (``engine.rollout``), so
sampled training always sees the paper's plant; the exact loss and the probe losses are those
of the unclamped linear loop. Introduced in Chapter 4.
"""

from __future__ import annotations

import functools

import torch
from torch.nn.functional import pad

from .. import _checks
from .._threads import single_thread
from ..linsys import abs2, causal_conv, impulse_response, sinusoid_conv_gram
from .engine import closed_loop_matrix, step_loop
from .network import TrackingRNN
from .task import PointMass, Scoring, Sinusoids, check_refs, read_convention, scored_losses

OUTPUTS = ("x", "vx", "y", "vy", "ux", "uy")  # the columns of a linear response
ERR_ROWS = slice(0, 3, 2)  # x and y (``task.POS``) as a slice: views, not gathers


def tracking_loss(q: torch.Tensor, r: torch.Tensor, convention=None, dt: float = 0.1
                  ) -> torch.Tensor:
    """The tracking loss per reference, q (T+1, B, 4), r (T+1, B, 2) at t = 0..T (time first,
    as ``rollout`` and ``Sinusoids.signal`` give them) -> (B,):
    the authors' (default) (dt/T) sum_{t=0..T-1} ||p_{t+1} - r_t||^2, or under another
    ``convention`` its pairing and weight (the book's: (1/T) sum_{t=1..T} ||p_t - r_t||^2).
    ``dt``: the step (s) that weights a dt-weighted loss. A sum of squares: inf where it
    overflows the dtype (positions near its largest value), never NaN."""
    _checks.finite_tensor("q", q)
    _checks.finite_tensor("r", r)
    dt = _checks.real("dt", dt, low=0.0, low_open=True)
    if r.dtype != q.dtype:
        raise TypeError(f"q and r must share a dtype, got {q.dtype} and {r.dtype}")
    if q.dim() != 3 or q.shape[0] < 2 or q.shape[-1] != 4 or r.shape != q.shape[:-1] + (2,):
        raise ValueError(f"q must have shape (T+1, B, 4) with T >= 1 and r (T+1, B, 2), got "
                         f"{tuple(q.shape)} and {tuple(r.shape)}")
    read = read_convention(convention, dt)
    return scored_losses(q, r, read["scale"], read["offset"])


class Response:
    """Complex responses Y (*E, K, T+1, 6) (columns ``OUTPUTS``, rows t = 0..T) of the
    unclamped loop to sinusoid k's input rho_k e_{a_k} (as ``scoring`` feeds it), and the
    errors E (*E, K, T, 2) = Y[1..T, pos] - targets (rows t = 1..T, each position against
    the reference the scoring pairs it with); E: the ensemble axis of an ensemble's response
    (absent for one network). Sinusoid first, not time first: Y is a table of K responses
    (like ``Scoring.inputs``), each reduced over its own time axis; the trajectories of a
    batch it makes (``combine``) come out time first, as ``rollout``'s."""

    def __init__(self, Y: torch.Tensor, scoring: Scoring, gram=None):
        self.Y, self.scoring, self.refs = Y, scoring, scoring.refs
        self._worst = self._probe = None
        self._gram = gram  # made with Y (``linsys.sinusoid_conv_gram``), or here on demand

    @functools.cached_property
    def err(self) -> torch.Tensor:
        """The errors E (*E, K, T, 2), made on demand: a training epoch whose Gram matrix came
        with Y (``sinusoid_conv_gram``) never reads them."""
        return self.Y[..., 1:, ERR_ROWS] - self.scoring.targets

    def gram(self) -> torch.Tensor:
        """The Gram matrix (*E, 2K, 2K) of the errors (``gram``): every loss of the unclamped
        loop is a quadratic form in it; computed once (an epoch reads it for its train and
        test losses and its probe losses)."""
        if self._gram is None:
            self._gram = gram(self.err)
        return self._gram

    def probe_losses(self) -> torch.Tensor:
        """Exact per-sinusoid losses power_k (1/T) sum_t ||E_k(t)||^2, (*E, K) (power_k =
        scale A_k^2/2): the Gram matrix's diagonal, Re and Im parts; computed once (training
        reads them for the loss and the record)."""
        if self._probe is None:
            diag, K = self.gram().diagonal(dim1=-2, dim2=-1), self.refs.K
            self._probe = self.scoring.power * (diag[..., :K] + diag[..., K:])
        return self._probe

    def expected_loss(self) -> torch.Tensor:
        """The loss averaged over random phases: the sum of the probe losses, (*E,)."""
        return self.probe_losses().sum(-1)

    def combine(self, phases, which=None, part="err") -> torch.Tensor:
        """Real trajectories Re sum_k c_k Y_k for phases (B, K) or (*E, B, K), time first (as
        ``rollout``): 'err' -> errors (T, *E, B, 2) at t = 1..T, 'all' -> every output
        (T+1, *E, B, 6) at t = 0..T (columns ``OUTPUTS``)."""
        return recombine(self.refs.coefficients(phases, which),
                         self.err if part == "err" else self.Y).movedim(-2, 0)

    def sampled_losses(self, phases, which=None) -> torch.Tensor:
        """Per-reference losses (*E, B) of the unclamped loop."""
        return self.scoring.scale * quadratic_form(self.refs.coefficients(phases, which),
                                                    self.gram())

    def transient_share(self, seconds: float) -> torch.Tensor:
        """The fraction of each probe loss incurred at times t dt <= ``seconds``, (*E, K)."""
        sq = abs2(self.err.detach()).sum(-1)                             # (*E, K, T)
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


def recombine(c: torch.Tensor, Y: torch.Tensor) -> torch.Tensor:
    """Re sum_k c_bk Y_k: c (..., B, K) complex, Y (..., K, T, o) complex -> (..., B, T, o)
    real (leading axes broadcast)."""
    T, o = Y.shape[-2:]
    out = c.real @ Y.real.flatten(-2) - c.imag @ Y.imag.flatten(-2)
    return out.unflatten(-1, (T, o))


def quadratic_losses(c: torch.Tensor, E: torch.Tensor) -> torch.Tensor:
    """(1/T) sum_t ||Re sum_k c_bk E_k(t)||^2 for every b, c (..., B, K), E (..., K, T, o)
    complex (leading axes broadcast) -> (..., B).

    With z_b = (Re c_b, Im c_b) and V = (Re E; -Im E) flattened to (2K, T o), the loss is the
    quadratic form z_b (V V^T / T) z_b^T: one 2K x 2K Gram matrix instead of B trajectories.
    """
    return quadratic_form(c, gram(E))


def gram(E: torch.Tensor) -> torch.Tensor:
    """V V^T / T (..., 2K, 2K) for E (..., K, T, o) complex, V = (Re E; -Im E) flattened to
    (2K, T o)."""
    T = E.shape[-2]
    V = torch.cat([E.real.flatten(-2), -E.imag.flatten(-2)], -2)
    return V @ V.transpose(-1, -2) / T


def quadratic_form(c: torch.Tensor, gram: torch.Tensor) -> torch.Tensor:
    """z_b gram z_b^T with z_b = (Re c_b, Im c_b), for c (..., B, K) complex and a ``gram``
    (..., 2K, 2K) (leading axes broadcast) -> (..., B)."""
    z = torch.cat([c.real, c.imag], -1)
    return ((z @ gram) * z).sum(-1)


@single_thread()
def linear_response(agent: TrackingRNN, plant: PointMass, refs: Sinusoids,
                    convention=None) -> Response:
    """The K complex trajectories of the unclamped closed loop at t = 0..T (differentiable in
    the network's tensors), scored under ``convention`` (default the authors'); of every
    member of an ensemble at once.

    s_t = sum_{j <= t} M^{t-j} G in_j with in_j the scoring's input sequence (whose t = 0 term
    is zero unless the network reads t = 0): a convolution with H_s = C M^s G, s = 0..T.
    """
    check_refs(plant, refs)
    scoring = refs.scoring(convention)
    M = closed_loop_matrix(agent, plant)
    N, E = agent.N, agent.batch_shape
    C = torch.cat([torch.eye(4, N + 4, dtype=M.dtype, device=M.device).expand(*E, 4, N + 4),
                   pad(agent.W_out, (4, 0))], -2)                # (*E, 6, d): q, u = W_out h
    G = pad(agent.alpha * agent.W_in[..., 2:], (0, 0, 4, 0))      # (*E, d, 2): r enters h
    H = impulse_response(C, M, G, refs.T + 1)                        # (T+1, *E, 6, 2)
    if scoring.taps is None:
        return Response(causal_conv(H, scoring.inputs_fft), scoring)
    Y, gram = sinusoid_conv_gram(H, scoring.cols, scoring.rot, *scoring.taps, ERR_ROWS,
                                 scoring.targets)
    return Response(Y, scoring, gram)


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
    return sampled_with_clamp(agent, plant, refs, phases, which, response)[0]


def sampled_with_clamp(agent, plant, refs, phases, which, resp, step=None):
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
        states = resp.combine(phases, which, part="all")[..., :4]       # (T+1, *E, B, 4)
        hit = (states.abs() > plant.bound).any(-1).any(0)                # (*E, B)
        if step is not None:
            hit &= step[:, None]
    if not hit.any():
        return losses, none
    phases, losses = torch.as_tensor(phases), losses.clone()
    if not E:
        r = refs.signal(phases[hit], which)
        losses[hit] = sc.losses(step_loop(agent, plant, r, sc.reads_first)["q"], r)
        return losses, True
    for k in hit.any(-1).nonzero().flatten().tolist():  # step each member's own references
        r = refs.signal((phases[k] if phases.dim() == 3 else phases)[hit[k]], which)
        q = step_loop(agent.member_view(k), plant, r, sc.reads_first)["q"]
        losses[k, hit[k]] = sc.losses(q, r)
    return losses, hit.any(-1)
