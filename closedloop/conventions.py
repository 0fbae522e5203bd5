"""The choices the paper leaves unstated, in one place (``shared/paper.md`` section 9).

A loss "mean squared state over an episode" can mean several things, and the authors' curves
were made with particular ones. Each chapter's default is the authors' setup
(``PAPER_RANK_ONE``, ``PAPER_TANH``, ``PAPER_OPEN_LOOP``); the book's earlier normalisation
(``BOOK``: the states after the start, a time-mean loss, an update at every epoch) stays
available by name, so that a chapter can show what a convention changes.

One episode of T steps from x_0 costs, per start (t counts steps, the state term averages the
n state coordinates: 2 for the double integrator, n for a ``plants.LinearPlant``)::

    c = 1/(n T) sum_{t in window} ||x_t||^2  +  beta_eff * sum_{t=0..T-1} u_t^2

with window t = 0..T-1 (``window='from_x0'``, the authors': x_0 included, x_T not) or
t = 1..T (``window='after_x0'``). A batch's loss is ``time_factor * mean_b c_b``:
``time='mean'`` keeps it (time_factor 1), ``time='sum'`` sums over the steps instead of
averaging (time_factor T, the authors' tanh runs: a gradient T times larger, which clipping
at 1 then bounds far more often). ``control='batch_sum'`` reads beta as the weight of the
batch *sum* of u_t^2 in each step's term (the authors' tanh runs: beta_eff = beta B / T with
a time sum), ``'batch_mean'`` as the weight of the per-start sum (beta_eff = beta).
``update_at_epoch0``: whether epoch 0 makes an update (the authors' rank-one runs) or only
records (their tanh runs: 1001 epochs, 1000 updates).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from . import _checks

WINDOWS = ("from_x0", "after_x0")
TIME = ("mean", "sum")
CONTROL = ("batch_mean", "batch_sum")
INITS = ("paper", "gaussian")


@dataclass(frozen=True)
class Convention:
    """How a batch's loss is formed and when updates start (see the module docstring)."""

    window: str = "from_x0"
    time: str = "mean"
    control: str = "batch_mean"
    update_at_epoch0: bool = True
    name: str = "custom"

    def __post_init__(self):
        _checks.choice("window", self.window, WINDOWS)
        _checks.choice("time", self.time, TIME)
        _checks.choice("control", self.control, CONTROL)
        if not isinstance(self.update_at_epoch0, bool):
            raise TypeError(f"update_at_epoch0 must be True or False, got "
                            f"{_checks.short(self.update_at_epoch0)}")

    @property
    def first_state(self) -> int:
        """The first step whose state the loss counts (``first_state(self.window)``)."""
        return first_state(self.window)

    def time_factor(self, T):
        """What a per-start cost (a time mean) is multiplied by: 1, or T for a time sum."""
        return T if self.time == "sum" else 1

    def beta_eff(self, beta, T, batch: int):
        """The weight of sum_t u_t^2 in the per-start cost c, from the setting's beta."""
        return beta * batch / T if self.control == "batch_sum" else beta

    def with_(self, **changes) -> "Convention":
        """A copy with some fields changed (named 'custom' unless ``name`` is given)."""
        return replace(self, **{"name": "custom", **changes})

    def describe(self) -> str:
        """One line for a figure caption or a table row."""
        states = "x_0..x_{T-1}" if self.window == "from_x0" else "x_1..x_T"
        return (f"{self.name}: states {states}, {self.time} over time, control cost "
                f"{self.control.replace('_', ' ')}, "
                f"{'an update at epoch 0' if self.update_at_epoch0 else 'no update at epoch 0'}")


#: The authors' rank-one linear runs (Chapters 2-3): x_0..x_{T-1}, time mean, an update at
#: every epoch including epoch 0.
PAPER_RANK_ONE = Convention("from_x0", "mean", "batch_mean", True, "paper (rank one)")
#: The authors' tanh closed-loop run (Chapter 1): sum over t = 0..T-1 of
#: [1/2 batch-mean ||x_t||^2 + beta * batch-sum u_t^2], no update at epoch 0.
PAPER_TANH = Convention("from_x0", "sum", "batch_sum", False, "paper (tanh)")
#: The authors' open-loop student (Chapter 1): the squared output difference summed over the
#: steps (batch mean), no update at epoch 0. (The window and control fields do not apply.)
PAPER_OPEN_LOOP = Convention("from_x0", "sum", "batch_mean", False, "paper (open loop)")
#: The book's earlier normalisation: x_1..x_T, time mean, an update at every epoch.
BOOK = Convention("after_x0", "mean", "batch_mean", True, "book")

NAMED = {"paper_rank_one": PAPER_RANK_ONE, "paper_tanh": PAPER_TANH,
         "paper_open_loop": PAPER_OPEN_LOOP, "book": BOOK}


def paper_for(agent) -> Convention:
    """The authors' convention for an agent's closed-loop training: ``PAPER_TANH`` for a tanh
    network, ``PAPER_RANK_ONE`` for a linear one (rank-one, reduced or full)."""
    return PAPER_TANH if getattr(agent, "activation", None) == "tanh" else PAPER_RANK_ONE


def first_state(window: str) -> int:
    """The first step whose state the loss counts: 0 for 'from_x0' (x_0..x_{T-1}), 1 for
    'after_x0' (x_1..x_T). The one place a window is read: ``coupled`` sums the states
    x_{first}..x_{first+T-1} of a rollout and builds its cost matrix from this number."""
    return WINDOWS.index(_checks.choice("window", window, WINDOWS))


def resolve(convention, default: Convention) -> Convention:
    """A Convention from a Convention, one of the names of ``NAMED``, or None (``default``)."""
    return _resolve(convention, default, Convention, NAMED)


def _resolve(convention, default, kind, named):
    """``convention`` as a ``kind``: itself, the entry of ``named`` it names, or ``default``
    for None; anything else is an error naming what is allowed."""
    if convention is None:
        return default
    if isinstance(convention, kind):
        return convention
    if isinstance(convention, str):
        return named[_checks.choice("convention", convention, tuple(named))]
    raise TypeError(f"convention must be a {kind.__name__}, one of {sorted(named)} or None, "
                    f"got {_checks.short(convention)}")


# -- the motor tracking task (Chapter 4) ------------------------------------------------------
PAIRINGS = ("shown", "same_time")
TWIN_AXES = ("mean", "sum")


@dataclass(frozen=True)
class TrackingConvention:
    """How a tracking episode is scored and trained (``shared/paper.md`` section 9).

    The closed loop is the same under every convention: the network reads
    (x_t, y_t, r_x(t dt), r_y(t dt)) at step t, its control u_t moves the plant to q_{t+1}.

    ``pairing='shown'`` (the authors'): the network also reads the reference at t = 0, and the
    error of step t is the position reached against the reference it was shown,
    p_{t+1} - r(t dt) for t = 0..T-1 (the time grid 0, dt, ..., (T-1) dt); the twin imitates
    the controls u_0..u_{T-1} that moved the plant. ``'same_time'`` (the book's earlier
    scoring): h_0 = 0 (the first read is at t = 1), the error is p_t - r(t dt) for t = 1..T,
    the twin imitates u_1..u_T.
    ``dt_weight``: the loss is (dt/T) sum_t ||error||^2 (the authors': each step weighted by dt)
    rather than (1/T) sum_t ||error||^2; both sum the two axes. ``twin_axes``: the twin's
    imitation loss averages ('mean', the authors' mean squared output difference) or sums
    ('sum') the squared difference over the two control axes (time is averaged either way).
    ``update_at_epoch0``: whether epoch 0 makes an update or only records (the authors: no
    update at epoch 0, so ``epochs`` updates take epochs + 2 recorded rows).
    ``twin_trains_W_in``: the open-loop twin trains its input weights as well as W and W_out
    (the closed-loop network keeps W_in fixed under every convention).
    """

    pairing: str = "shown"
    dt_weight: bool = True
    twin_axes: str = "mean"
    update_at_epoch0: bool = False
    twin_trains_W_in: bool = True
    name: str = "custom"

    def __post_init__(self):
        _checks.choice("pairing", self.pairing, PAIRINGS)
        _checks.choice("twin_axes", self.twin_axes, TWIN_AXES)
        for field in ("dt_weight", "update_at_epoch0", "twin_trains_W_in"):
            if not isinstance(getattr(self, field), bool):
                raise TypeError(f"{field} must be True or False, got "
                                f"{_checks.short(getattr(self, field))}")

    def with_(self, **changes) -> TrackingConvention:
        """A copy with some fields changed (named 'custom' unless ``name`` is given)."""
        return replace(self, **{"name": "custom", **changes})

    def describe(self) -> str:
        """One line for a figure caption or a table row."""
        error = ("p_{t+1} - r(t dt), t = 0..T-1" if self.pairing == "shown"
                 else "p_t - r(t dt), t = 1..T")
        return (f"{self.name}: error {error}, {'dt-weighted' if self.dt_weight else 'unweighted'}"
                f" time mean, twin loss {self.twin_axes} over axes"
                f"{' (W_in trained)' if self.twin_trains_W_in else ''}, "
                f"{'an update at epoch 0' if self.update_at_epoch0 else 'no update at epoch 0'}")


#: The authors' tracking setup (Chapter 4): error p_{t+1} - r(t dt) on the grid t = 0..T-1,
#: loss (dt/T) sum_t ||error||^2, the twin's loss the mean squared control difference, the twin
#: trains W_in too, no update at epoch 0.
PAPER_TRACKING = TrackingConvention("shown", True, "mean", False, True, "paper (tracking)")
#: The book's earlier tracking scoring: error p_t - r(t dt) for t = 1..T, loss
#: (1/T) sum_t ||error||^2, the twin's loss summed over the axes, W_in fixed for the twin too,
#: an update at every epoch.
BOOK_TRACKING = TrackingConvention("same_time", False, "sum", True, False, "book (tracking)")

TRACKING_NAMED = {"paper_tracking": PAPER_TRACKING, "book_tracking": BOOK_TRACKING}


def resolve_tracking(convention) -> TrackingConvention:
    """A TrackingConvention from one, one of the names of ``TRACKING_NAMED``, or None (the
    authors', ``PAPER_TRACKING``)."""
    return _resolve(convention, PAPER_TRACKING, TrackingConvention, TRACKING_NAMED)