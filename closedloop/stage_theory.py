"""Which of the paper's three stages a linear plant allows (Chapter 6, beyond the paper).

Seen from the plant b(lambda)/a(lambda) (``LinearPlant.transfer_polynomials``, n states), a
rank-one linear network is a first-order dynamic output-feedback controller

    u = [s_zm + k / (lambda - s_vu)] y,    k = s_vm s_zu,

three free numbers (``plant_theory``: the closed loop's n + 1 nonzero eigenvalues are the roots
of q = a (lambda - s_vu) - b [s_zm (lambda - s_vu) + k]). That decides what training can reach:

- stage 1 (u, v negligible) is static feedback u = s_zm y: eigenvalues eig(A + s_zm B C), the
  roots of a - s_zm b (``stage1``). If no s_zm gives rho < 1, the loop stays unstable until
  the network builds memory (stage 2); if some does, stage 1 alone can end in a stable loop.
- a stable loop at all (stage 3) needs some (s_zm, s_vu, k) with every root of q inside the
  unit circle (``first_order_reach``: the smallest spectral radius the family can give).

In coefficients q = lambda a - c0 a - c1 lambda b + c2 b with (c0, c1, c2) = (s_vu, s_zm,
s_zm s_vu - k), a bijection onto R^3: the reachable q form an affine space of dimension
rank[a, lambda b, b] <= 3 inside the n + 1 free coefficients of a monic q of degree n + 1. For
n <= 2 (and a minimal plant) that is all of them, so q = lambda^{n+1} (deadbeat, rho = 0) is
reachable. For n >= 3 it is not, and the answer depends on the plant.

The chain of k integrators (``LinearPlant.integrator(k, dt)``) has a = (lambda - 1)^k and
b = dt^k. In w = lambda - 1,

    q = w^{k+1} + (1 - c0) w^k - dt^k c1 w + dt^k (c2 - c1),

so for k >= 3 the coefficients of w^2 .. w^{k-1} are 0 for every network. A root inside the
unit circle has Re(lambda) < 1, i.e. Re(w) < 0: a q with every root inside would be a Hurwitz
polynomial in w, whose coefficients are all positive. So no rank-one network stabilizes a
chain of three or more integrators, at any dt. Even rho = 1 needs q = w^m r(w) with r Hurwitz
(the closed disk meets Re(w) = 0 only at w = 0) and m >= k (else r's positive coefficients
fill a vanishing power), so c1 = c2 = 0: s_zm = 0 and s_vm s_zu = 0, with |s_vu| <= 1. The
best a rank-one network can do for the chain is nothing. (The continuous-time analogue:
s^4 + p s^3 + K s + K z lacks its s^2 term and fails Routh-Hurwitz.)

Cost convention (``plant_theory``): episode cost 1/(n T) sum_t ||x_t||^2 + beta sum_t u_t^2,
i.e. per step ||x_t||^2 / n + beta T u_t^2, up to the overall 1/T. ``lqr`` is the optimal
full-state feedback for those per-step weights, Q = I / n and R = beta T, over an infinite
horizon; its cost is summed over t >= 0 from x_0 ~ the plant's box (state units squared).

Spectral radii are dimensionless (per step); overlaps are (s_zm, s_zu, s_vm, s_vu) as
``RankOneAgent.overlaps``, the first-order controller (s_zm, s_vu, k).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from math import comb

import numpy as np
import scipy.linalg
import scipy.optimize

from . import _checks, theory
from . import plant_theory as pt
from .plants import LinearPlant

TOL = 1e-6        # rho within TOL of 1 is marginal: neither stable nor unstable
R_FLOOR = 1e-8    # the LQR control weight at beta = 0 (the paper's R -> 0, spec s.1)


# the spectral radius of the two controller families -------------------------------------------
def static_radius(plant: LinearPlant, s_zm) -> np.ndarray:
    """rho(A + s_zm B C) for static feedback u = s_zm y, (...) for s_zm (...)."""
    return np.abs(pt.stage1_eigenvalues(s_zm, plant)).max(-1)


def first_order_radius(plant: LinearPlant, s_zm, s_vu, k) -> np.ndarray:
    """max |root of q| for the controller s_zm + k / (lambda - s_vu), broadcast over the three
    (arrays); = rho(P_eff) = rho(P) of any rank-one network with these overlaps."""
    s_zm, s_vu, k = np.broadcast_arrays(*(np.asarray(x, dtype=float) for x in (s_zm, s_vu, k)))
    q = np.stack([s_zm, k, np.ones_like(k), s_vu], -1)  # s_zu = k, s_vm = 1: same q
    return np.abs(pt.roots(q, plant)).max(-1)


def first_order_overlaps(s_zm: float, s_vu: float, k: float) -> np.ndarray:
    """(s_zm, s_zu, s_vm, s_vu) of a network realizing the controller: s_vm = sqrt|k|,
    s_zu = sign(k) sqrt|k| (only the product s_vm s_zu = k enters the loop), (4,)."""
    r = np.sqrt(abs(k))
    return np.array([s_zm, np.copysign(r, k), r, s_vu], dtype=float)


# stage 1: static feedback -------------------------------------------------------------------
@dataclass(frozen=True)
class StaticFeedback:
    """What u = s_zm y does to a plant. ``s_zm``, ``rho`` (G,): rho(A + s_zm B C) on the grid;
    ``intervals``: the maximal (lo, hi) with rho < 1 (refined to 1e-12; empty: never stable);
    ``best_s_zm``, ``best_rho``: the most stable static feedback in the range."""

    s_zm: np.ndarray
    rho: np.ndarray
    intervals: tuple
    best_s_zm: float
    best_rho: float

    @property
    def stabilizable(self) -> bool:
        return self.best_rho < 1 - TOL


def stage1(plant: LinearPlant, s_zm_range=None, n_grid: int = 2001) -> StaticFeedback:
    """Static feedback u = s_zm y over ``s_zm_range`` (lo, hi), on ``n_grid`` points refined
    by root finding (interval ends) and Brent (the minimum).

    Default range: every s_zm with rho(A + s_zm B C) <= max(rho(A), 1), which holds every
    stabilizing s_zm and the most stable one (``coefficient_box``), widened to [-1, 1]. For
    the double integrator rho = sqrt(1 - s_zm) for s_zm < 0 and 1 + sqrt(s_zm) above: never
    below 1 (paper s.5), so memory is needed.
    """
    _checks.instance("plant", plant, LinearPlant)
    n_grid = _checks.integer("n_grid", n_grid, low=3)
    if s_zm_range is None:
        a, b = plant.transfer_polynomials()
        radius = max(static_radius(plant, 0.0).item(), 1.0)
        (lo, hi), = coefficient_box(a, -b[:, None], radius)
        lo, hi = min(lo, -1.0), max(hi, 1.0)
    else:
        lo, hi = _range("s_zm_range", s_zm_range)
    s = np.linspace(lo, hi, n_grid)
    rho = static_radius(plant, s)
    f = lambda x: static_radius(plant, x).item()  # noqa: E731
    intervals = []
    inside = rho < 1
    for i in np.flatnonzero(np.diff(inside.astype(int)) != 0):  # rho crosses 1 in (s_i, s_i+1)
        intervals.append(scipy.optimize.brentq(lambda x: f(x) - 1, s[i], s[i + 1], xtol=1e-12))
    ends = ([lo] if inside[0] else []) + intervals + ([hi] if inside[-1] else [])
    i = int(np.argmin(rho))
    res = scipy.optimize.minimize_scalar(f, bounds=(s[max(i - 1, 0)], s[min(i + 1, n_grid - 1)]),
                                         method="bounded", options={"xatol": 1e-12})
    # s_zm = 0 too: at a multiple eigenvalue of A (an integrator chain) rho grows like
    # |s_zm|^{1/n}, so Brent's best point a hair off 0 can be off by far more than 1e-12
    best = min([(res.fun, res.x), (rho[i], s[i])] + ([(f(0.0), 0.0)] if lo <= 0 <= hi else []))
    return StaticFeedback(s, rho, tuple(zip(ends[::2], ends[1::2])), float(best[1]),
                          float(best[0]))


# stage 3: can a first-order controller stabilize the plant at all ----------------------------
@dataclass(frozen=True)
class Reach:
    """The most stable loop a rank-one network can give the plant: ``rho`` = min over
    (s_zm, s_vu, k) of max |root of q|, at ``s_zm``, ``s_vu``, ``k`` (``overlaps`` (4,): one
    network with them); ``roots`` (n + 1,) there (a multiple root: split by ~1e-8 around
    ``rho``, which is exact to ~1e-12); ``deadbeat``: q = lambda^{n+1} is reachable
    (rho = 0 exactly; its computed roots scatter by ~eps^{1/(n+1)}); ``dim``: the dimension
    of the reachable coefficients, rank[a, lambda b, b]."""

    rho: float
    s_zm: float
    s_vu: float
    k: float
    roots: np.ndarray
    deadbeat: bool
    dim: int
    overlaps: np.ndarray = field(repr=False)

    @property
    def stable(self) -> bool:
        return self.rho < 1 - TOL


def first_order_reach(plant: LinearPlant, n_grid: int = 25, n_starts: int = 8) -> Reach:
    """min over (s_zm, s_vu, k) of the closed loop's spectral radius (module docstring).

    Global search in the reachable coefficients y (q = lambda a + U y, U orthonormal): the
    minimizer has rho <= r0, the best of three known controllers (none, the best static one,
    the least-squares deadbeat), so it lies in the box ``coefficient_box`` gives for r0. A
    grid of ``n_grid`` points per dimension over that box, then Nelder-Mead from the
    ``n_starts`` best grid points and the known controllers, and the best three finished by
    SLSQP on a smooth form of the problem (``_polish``); the best found is returned.
    """
    _checks.instance("plant", plant, LinearPlant)
    n_grid = _checks.integer("n_grid", n_grid, low=2, high=200)
    n_starts = _checks.integer("n_starts", n_starts, low=1)
    base, M = _first_order_family(plant)
    U, sv, Vt = np.linalg.svd(M, full_matrices=False)
    dim = int((sv > 1e-10 * sv[0]).sum())
    U = U[:, :dim]
    to_c = Vt[:dim].T / sv[:dim]  # y -> the minimum-norm (c0, c1, c2)
    rho_y = lambda y: _radius(base + np.asarray(y) @ U.T)  # noqa: E731

    deadbeat = np.zeros_like(base)
    deadbeat[0] = 1.0
    y_db = U.T @ (deadbeat - base)
    if np.abs(base + U @ y_db - deadbeat).max() < 1e-12 * max(1.0, np.abs(base).max()):
        return _reach(plant, y_db @ to_c.T, 0.0, True, dim)
    s1 = stage1(plant)
    known = [np.zeros(dim), y_db, U.T @ (M @ [0.0, s1.best_s_zm, 0.0])]
    r0 = min(rho_y(y) for y in known) * (1 + 1e-9)
    box = coefficient_box(base, U, r0)
    axes = [np.linspace(lo, hi, n_grid) for lo, hi in box]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, dim)
    rho = rho_y(grid)
    starts = [grid[i] for i in np.argsort(rho)[:n_starts]] + known
    step = np.array([max(hi - lo, 1e-9) for lo, hi in box]) / (n_grid - 1)
    found = sorted((_nelder_mead(rho_y, y0, step) for y0 in starts), key=lambda f: f[1])
    # the minimum is typically a multiple root (the lag plant's: -0.85 and 0.85 thrice), a
    # cusp of rho that a derivative-free search approaches only to ~1e-4: finish smoothly
    best = (found[0][0], found[0][1], None)
    for y0, _ in found[:3]:
        polished = _polish(base, U, y0)
        if polished[1] < best[1]:
            best = polished
    return _reach(plant, best[0] @ to_c.T, best[1], False, dim, best[2])


def _nelder_mead(f, y0, step):
    simplex = np.vstack([y0, y0 + np.diag(step)])
    res = scipy.optimize.minimize(f, y0, method="Nelder-Mead",
                                  options={"initial_simplex": simplex, "xatol": 1e-7,
                                           "fatol": 1e-9, "maxiter": 400 * len(y0)})
    return res.x, float(res.fun)


def _first_order_family(plant):
    """base (n + 2,) = lambda a and M (n + 2, 3) with q = base + M (c0, c1, c2), highest power
    first (module docstring)."""
    a_lam, a, b_lam, b = pt.q_basis(plant)
    return a_lam, np.stack([-a, -b_lam, b], 1)


def _polish(base, U, y0):
    """min r over real factorizations q = prod(lambda^2 + p_i lambda + s_i) [(lambda + t)] in
    the family (q - base orthogonal to the complement of U), subject to every factor's roots
    within r (Jury: |s| <= r^2, |p| r <= r^2 + s; |t| <= r): smooth, by SLSQP from the roots
    at y0. Returns (y, r, roots of the factors), or (y0, inf, None) if it fails."""
    d = len(base) - 1
    comp = scipy.linalg.null_space(U[1:].T).T  # the coefficients no network can move
    roots = np.sort_complex(np.roots(base + U @ y0))
    pairs, rest = [], list(roots)
    while len(rest) >= 2:  # conjugates together, then neighbouring reals
        z = rest.pop(0)
        j = min(range(len(rest)), key=lambda i: abs(rest[i] - np.conj(z)))
        w = rest.pop(j)
        pairs += [-(z + w).real, (z * w).real]
    x0 = np.array([np.abs(roots).max()] + pairs + [-z.real for z in rest])
    quad = lambda x: [np.array([1.0, x[1 + 2 * i], x[2 + 2 * i]]) for i in range(d // 2)]  # noqa: E731

    def poly(x):
        out = np.array([1.0, x[-1]]) if d % 2 else np.ones(1)
        for f in quad(x):
            out = np.polymul(out, f)
        return out

    def jury(x):
        r, out = x[0], []
        for _, p, s_ in quad(x):
            out += [r * r - s_, r * r + s_, r * r + s_ - p * r, r * r + s_ + p * r]
        return np.array(out + ([r - x[-1], r + x[-1]] if d % 2 else []))

    cons = [{"type": "ineq", "fun": jury}]
    if comp.size:
        cons.append({"type": "eq", "fun": lambda x: comp @ (poly(x)[1:] - base[1:])})
    res = scipy.optimize.minimize(lambda x: x[0], x0, method="SLSQP", constraints=cons,
                                  options={"ftol": 1e-14, "maxiter": 500})
    q = poly(res.x)
    if not res.success or (comp.size and np.abs(comp @ (q[1:] - base[1:])).max() > 1e-9) or \
            jury(res.x).min() < -1e-9:
        return y0, np.inf, None
    # r holds to the constraints' ~1e-15, the roots of a double factor split by ~sqrt of that
    found = np.concatenate([np.roots(f) for f in quad(res.x)] + [[-res.x[-1]]] * (d % 2))
    return U.T @ (q - base), float(res.x[0]), found.astype(complex)


def _radius(coeffs) -> np.ndarray:
    """max |root| of monic polynomials, coefficients (..., d + 1) highest first."""
    c = np.asarray(coeffs, dtype=float)
    d = c.shape[-1] - 1
    comp = np.zeros(c.shape[:-1] + (d, d))
    comp[..., 0, :] = -c[..., 1:]
    comp[..., np.arange(1, d), np.arange(d - 1)] = 1.0
    return np.abs(np.linalg.eigvals(comp)).max(-1)


def _reach(plant, c, rho, deadbeat, dim, roots=None) -> Reach:
    s_vu, s_zm, c2 = (float(x) for x in c)
    k = s_zm * s_vu - c2
    q = first_order_overlaps(s_zm, s_vu, k)
    if roots is None:
        roots = np.zeros(plant.n_state + 1, complex) if deadbeat else pt.roots(q, plant)
    return Reach(float(rho), s_zm, s_vu, k, roots, deadbeat, dim, q)


def coefficient_box(base, M, radius: float) -> list[tuple[float, float]]:
    """Bounds on y (one (lo, hi) per column of M) holding every monic polynomial base + M y
    (coefficients (d + 1,), highest first) whose roots all have modulus <= ``radius``: the
    coefficient of lambda^{d-j} is +/- a sum of binom(d, j) products of j roots, so at most
    binom(d, j) radius^j in size; the box of that polytope, by linear programming."""
    base, M = np.asarray(base, dtype=float), np.asarray(M, dtype=float)
    radius = _checks.real("radius", radius, low=0.0)
    d = len(base) - 1
    bound = np.array([comb(d, j) * radius ** j for j in range(1, d + 1)])
    A_ub = np.vstack([M[1:], -M[1:]])
    b_ub = np.concatenate([bound - base[1:], bound + base[1:]])
    box = []
    for i in range(M.shape[1]):
        ends = []
        for sign in (1, -1):
            cost = np.zeros(M.shape[1])
            cost[i] = sign
            res = scipy.optimize.linprog(cost, A_ub=A_ub, b_ub=b_ub, bounds=(None, None))
            if res.status != 0:
                raise ValueError(f"no polynomial of this family has all roots within radius "
                                 f"{radius!r} (linprog: {res.message})")
            ends.append(sign * res.fun)
        box.append((ends[0], ends[1]))
    return box


# the full-state benchmark -------------------------------------------------------------------
@dataclass(frozen=True)
class LQR:
    """The optimal full-state feedback u = -K x for per-step cost x^T Q x + R u^2 over
    t >= 0: ``gain`` K (n,), ``riccati`` X (n, n) (cost-to-go x^T X x), ``cost`` =
    E[x_0^T X x_0] over the plant's box, ``rho`` = rho(A - B K), ``Q`` = I / n, ``R``."""

    gain: np.ndarray
    riccati: np.ndarray
    cost: float
    rho: float
    Q: np.ndarray
    R: float


def lqr(plant: LinearPlant, beta: float = 0.0, T: int = 50) -> LQR:
    """The LQR benchmark at the episode cost's per-step weights Q = I / n, R = beta T
    (module docstring; R = 1e-8 at beta = 0, as the paper's R -> 0). For the double
    integrator the gain is ``theory.lqr_gain`` (Q = I, R / n: the same problem, scaled)."""
    _checks.instance("plant", plant, LinearPlant)
    beta = _checks.real("beta", beta, low=0.0)
    T = _checks.integer("T", T, low=1)
    A, B, _ = plant.numpy()
    n = plant.n_state
    Q, R = np.eye(n) / n, max(beta * T, R_FLOOR)
    K, X = theory.riccati(A, B, Q, R)
    K = K[0]
    cost = float(np.trace(X @ plant.x0.second_moment().numpy()))
    rho = float(np.abs(np.linalg.eigvals(A - np.outer(B, K))).max())
    return LQR(K, X, cost, rho, Q, R)


# the verdict --------------------------------------------------------------------------------
@dataclass(frozen=True)
class AllowedStages:
    """Which of the paper's stages a plant allows, and the numbers behind each.

    ``open_rho``: rho(A), the untrained loop's (s_zm = 0, u = v = 0); ``stage1_unstable``:
    every static feedback leaves rho >= 1 (``static.best_rho``); ``stage3_reachable``: some
    rank-one network gives rho < 1 (``reach.rho``); ``needs_memory``: both, so stage 2 (the
    network builds memory until the loop stabilizes) is the only way to a stable loop.
    """

    name: str
    open_rho: float
    static: StaticFeedback
    reach: Reach
    lqr: LQR

    starts_unstable = property(lambda self: self.open_rho >= 1 - TOL)
    stage1_unstable = property(lambda self: not self.static.stabilizable)
    stage3_reachable = property(lambda self: self.reach.stable)
    needs_memory = property(lambda self: self.stage1_unstable and self.stage3_reachable)

    def words(self) -> str:
        """One sentence a chapter can glue."""
        s = self.static
        state = ("unstable" if self.open_rho > 1 + TOL else "marginally stable"
                 if self.starts_unstable else "stable")
        out = f"The {self.name} is {state} on its own (\u03c1(A) = {self.open_rho:.3f})"
        if not self.starts_unstable:
            out += ", so the untrained loop starts stable and stage 1's instability need not occur"
        if s.stabilizable:
            lo, hi = min(s.intervals, key=lambda iv: abs(iv[0] + iv[1] - 2 * s.best_s_zm))
            out += (f"; static feedback u = s_zm y stabilizes it for s_zm in ({lo:.3f}, "
                    f"{hi:.3f}) (best \u03c1 = {s.best_rho:.3f} at s_zm = {s.best_s_zm:.3f}), "
                    f"so stage 1 alone can end in a stable loop and memory is not needed")
        else:
            out += (f"; no static feedback stabilizes it (best \u03c1(A + s_zm B C) = "
                    f"{s.best_rho:.3f} at s_zm = {s.best_s_zm:.3f})")
        r = self.reach
        best = (f"\u03c1 = {r.rho:.3f}{' (deadbeat)' if r.deadbeat else ''} at s_zm = "
                f"{_shown(r.s_zm)}, s_vu = {_shown(r.s_vu)}, s_vm s_zu = {_shown(r.k)}")
        if self.needs_memory:
            return out + (f", but a rank-one network can ({best}): memory is needed, and all "
                          f"three of the paper's stages are possible.")
        if not self.stage3_reachable:
            return out + (f", and no rank-one network does either (best {best}): a stable "
                          f"loop, stage 3, is out of reach of a first-order controller.")
        return out + f"; a rank-one network reaches {best}."

    def row(self) -> dict:
        """The survey's table row (``survey_markdown``)."""
        r, s = self.reach, self.static
        return {"plant": self.name, "n": len(r.roots) - 1, "rho(A)": self.open_rho,
                "static stabilizes": s.stabilizable, "best static rho": s.best_rho,
                "best static s_zm": s.best_s_zm, "first-order min rho": r.rho,
                "s_zm": r.s_zm, "s_vu": r.s_vu, "k = s_vm s_zu": r.k,
                "needs memory": self.needs_memory, "stage 3 reachable": self.stage3_reachable,
                "LQR cost": self.lqr.cost, "LQR rho": self.lqr.rho}


def allowed_stages(plant: LinearPlant, name: str = "plant", beta: float = 0.0,
                   T: int = 50) -> AllowedStages:
    """The verdict for one plant (``AllowedStages``); ``beta``, ``T`` for the LQR benchmark."""
    _checks.instance("plant", plant, LinearPlant)
    if not isinstance(name, str):
        raise TypeError(f"name must be a string, got {_checks.short(name)}")
    return AllowedStages(name, static_radius(plant, 0.0).item(), stage1(plant),
                         first_order_reach(plant), lqr(plant, beta, T))


# the survey ---------------------------------------------------------------------------------
OSCILLATOR = dict(omega=1.0, dt=0.5)  # about 12.6 steps per period


def survey_plants() -> dict[str, LinearPlant]:
    """The chapter's plants: integrator(k) at dt = 1 (the constructor's default), the damped
    oscillator at ``OSCILLATOR``, the unstable first-order plant, and the double integrator
    behind a first-order actuator lag (x3 += 0.5 (u - x3)): a third-order plant with a pole
    off 1."""
    lag = LinearPlant([[1.0, 1.0, 0.0], [0.0, 1.0, 1.0], [0.0, 0.0, 0.5]], [0.0, 0.0, 0.5],
                      [1.0, 0.0, 0.0])
    return {"integrator (k = 1)": LinearPlant.integrator(1),
            "double integrator": LinearPlant.integrator(2),
            "triple integrator": LinearPlant.integrator(3),
            "integrator (k = 4)": LinearPlant.integrator(4),
            "oscillator (zeta = 0.02)": LinearPlant.damped_oscillator(zeta=0.02, **OSCILLATOR),
            "oscillator (zeta = 0.5)": LinearPlant.damped_oscillator(zeta=0.5, **OSCILLATOR),
            "unstable plant (a = 1.1)": LinearPlant.unstable(1.1),
            "unstable plant (a = 1.5)": LinearPlant.unstable(1.5),
            "double integrator with lag": lag}


def survey(plants: dict | None = None, beta: float = 0.0, T: int = 50) -> list[AllowedStages]:
    """``allowed_stages`` for each named plant (default ``survey_plants()``)."""
    plants = survey_plants() if plants is None else plants
    if not isinstance(plants, dict) or not plants:
        raise ValueError("plants must be a non-empty dict {name: LinearPlant}")
    return [allowed_stages(p, name, beta, T) for name, p in plants.items()]


def survey_markdown(verdicts) -> str:
    """A markdown table of the survey (``AllowedStages.row``), numbers to 3 decimals."""
    rows = [v.row() for v in verdicts]
    keys = list(rows[0])
    fmt = lambda x: ("yes" if x else "no") if isinstance(x, (bool, np.bool_)) else (  # noqa: E731
        f"{x:.3f}" if isinstance(x, float) else str(x))
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(fmt(r[k]) for k in keys) + " |" for r in rows]
    return "\n".join(lines)


def _range(name, value) -> tuple[float, float]:
    try:
        lo, hi = value
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a pair (lo, hi), got {_checks.short(value)}") from None
    lo, hi = _checks.real(f"{name}[0]", lo), _checks.real(f"{name}[1]", hi)
    if not lo < hi:
        raise ValueError(f"{name} must have lo < hi, got ({lo!r}, {hi!r})")
    return lo, hi


def _shown(x: float) -> str:
    """x to 3 digits, a value within rounding of 0 (a search's 1e-15) as 0."""
    return "0" if abs(x) < 1e-9 else f"{x:.3g}"
