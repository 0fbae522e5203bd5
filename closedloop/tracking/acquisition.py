"""Reading a tracking history: when each frequency is acquired (the probe losses against
their reference power), the course of the test loss, the network and its frequencies at an
epoch, and the constants the chapter compares with (people's and the authors' acquisition
times). Introduced in Chapter 4, sections "Acquisition" and "Compared with people".
"""

from __future__ import annotations

import numpy as np
import torch

from .. import _checks
from ..history import History, record_index
from ..stages import settles
from .network import TrackingRNN
from .task import Sinusoids, history_scoring

# human manual tracking, normalized acquisition time of 0.1, 0.2, 0.3, 0.4 Hz (paper s.7)
HUMAN_ACQUISITION = (2.5 / 20, 4 / 20, 6 / 20, 9.5 / 20)
# the epochs the authors marked as the acquisitions in their figure (chosen by hand, low to
# high frequency), of a run of AUTHORS_EPOCHS epochs (paper s.9)
AUTHORS_ACQUISITION = (230, 1200, 2600, 4500)
AUTHORS_EPOCHS = 10000
# the largest |Im eig(W)| at those epochs in the authors' data, rad/s (paper s.7)
AUTHORS_TOP_IM = (0.58, 1.25, 1.82, 2.54)


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
    _checks.instance("refs", refs, Sinusoids)
    history_with(history, "probe_loss", refs.K)
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
    history_with(history, "probe_loss")
    return history.arrays.get("probe_epoch", history.epoch)


def probe_at(history: History, epoch: int) -> np.ndarray:
    """The probe losses (K,) at the first epoch at or after ``epoch`` that recorded them (the
    last if none)."""
    return history.probe_loss[record_index(probe_epochs(history), epoch)]


def in_order(epochs) -> bool:
    """Whether acquisition epochs (listed low to high frequency, None: never) come in order of
    frequency: the acquired ones non-decreasing, and every None after them."""
    if not isinstance(epochs, (list, tuple)):
        raise TypeError(f"epochs must be a list of epochs (or None), got {_checks.short(epochs)}")
    got = [e for e in epochs if e is not None]
    return got == sorted(got) and list(epochs[:len(got)]) == got


def n_comparable(runs, at_least: int = 2) -> int:
    """How many of ``runs`` (lists of acquisition epochs, one per run; None: never) acquired at
    least ``at_least`` frequencies: the runs that can show an order at all. Introduced in
    Chapter 4, section "Compared with people"."""
    return sum(_comparable(runs, at_least))


def n_in_order(runs, at_least: int = 2) -> int:
    """How many of ``runs`` acquired at least ``at_least`` frequencies and are ``in_order``
    (a run that learned one frequency or none shows no order, so it is not counted).
    Introduced in Chapter 4, section "Compared with people"."""
    return sum(ok and in_order(epochs) for ok, epochs in zip(_comparable(runs, at_least), runs))


def _comparable(runs, at_least) -> list[bool]:
    """Per run: whether it acquired at least ``at_least`` frequencies (checked arguments)."""
    if not isinstance(runs, (list, tuple)):
        raise TypeError(f"runs must be a list of runs' epochs, got {_checks.short(runs)}")
    at_least = _checks.integer("at_least", at_least, low=1)
    return [sum(e is not None for e in epochs) >= at_least for epochs in runs]


def no_earlier(epochs, than) -> bool:
    """Whether every frequency came no earlier in ``epochs`` than in ``than`` (two lists of
    acquisition epochs, None: never, which is later than any epoch). Introduced in Chapter 4,
    section "Sampled and exact loss"."""
    for name, value in (("epochs", epochs), ("than", than)):
        if not isinstance(value, (list, tuple)):
            raise TypeError(f"{name} must be a list of epochs (or None), got "
                            f"{_checks.short(value)}")
    if len(epochs) != len(than):
        raise ValueError(f"epochs and than must list the same frequencies, got {len(epochs)} "
                         f"and {len(than)}")
    return all(e is None or (s is not None and e >= s) for e, s in zip(epochs, than))


def member_acquisitions(history: History, refs: Sinusoids, fraction: float = 0.5,
                        window: int = 51, first: bool = False) -> list:
    """``acquisition_epochs`` of every member of an ensemble history, in member order: one
    list (low to high frequency, None: never) per member. Introduced in Chapter 4, section
    "Compared with people"."""
    history_with(history, "probe_loss")
    if history.probe_loss.ndim != 3:
        raise ValueError(f"history must be an ensemble's (probe_loss of shape (E, members, "
                         f"K)), got shape {history.probe_loss.shape}")
    return [acquisition_epochs(history.member(k), refs, fraction, window, first)
            for k in range(history.probe_loss.shape[1])]


def acquisition_table(seeds, learned, acquired) -> str:
    """One line per run, ``seed s: first learned [...], acquired [...]``, from three lists
    of equal length (the runs' seeds, first-learned and acquired epochs)."""
    if not all(isinstance(v, (list, tuple)) for v in (seeds, learned, acquired)) or not (
            len(seeds) == len(learned) == len(acquired)):
        raise ValueError(f"seeds, learned and acquired must be lists of one entry per run, "
                         f"got {_checks.short(seeds)}, {_checks.short(learned)} and "
                         f"{_checks.short(acquired)}")
    return "\n".join(f"seed {s}: first learned {first}, acquired {got}"
                     for s, first, got in zip(seeds, learned, acquired))


def normalized(epochs, length) -> list:
    """Acquisition epochs divided by the training length ``length`` (epochs run); None stays
    None. ``epochs`` may also be a list of runs' lists (each normalized alike).
    Introduced in Chapter 4, section "Compared with people"."""
    length = _checks.real("length", length, low=0.0, low_open=True)
    if not isinstance(epochs, (list, tuple)):
        raise TypeError(f"epochs must be a list of epochs (or None), got {_checks.short(epochs)}")
    return [normalized(e, length) if isinstance(e, (list, tuple)) else
            None if e is None else e / length for e in epochs]


def excursion(history: History) -> dict:
    """The course of a history's closed-loop test loss: ``start`` (epoch 0), ``peak`` and
    ``peak_epoch`` (its largest value and the first epoch that reaches it), ``final`` (the
    last recorded) and ``recovered`` (final < peak / 2). Introduced in Chapter 4, section
    "Open-loop twin"."""
    history_with(history, "test_loss")
    loss = np.asarray(history.test_loss, dtype=float)
    if loss.ndim != 1:
        raise ValueError(f"history must be one run (take an ensemble's member), got test_loss "
                         f"of shape {loss.shape}")
    i = int(np.argmax(loss))
    return dict(start=float(loss[0]), peak=float(loss[i]),
                peak_epoch=int(history.test_epoch[i]), final=float(loss[-1]),
                recovered=bool(loss[-1] < loss[i] / 2))


def clamped_epochs(history: History) -> list:
    """The epochs (ints, in order) whose training batch reached the plant's clamp.
    Introduced in Chapter 4, section "Training"."""
    history_with(history, "clamped")
    return [int(e) for e in history.epoch[np.asarray(history.clamped, bool)]]


def unstable_share(history: History) -> float:
    """The fraction of the recorded epochs (``eig_epoch``) at which the network's unclamped
    closed loop runs away: spectral radius of M above 1. Introduced in Chapter 4, section
    "Open-loop twin"."""
    history_with(history, "spectral_radius")
    return float((history.spectral_radius > 1).mean())


def largest_frequency(history: History, epochs) -> list:
    """The largest imaginary part of eig(W - I)/tau (rad/s) at the first recorded epoch at or
    after each of ``epochs`` (None stays None)."""
    history_with(history, "eig_W")
    if not isinstance(epochs, (list, tuple)):
        raise TypeError(f"epochs must be a list of epochs (or None), got {_checks.short(epochs)}")
    out = []
    for k, e in enumerate(epochs):
        if e is None:
            out.append(None)
            continue
        i = record_index(history.eig_epoch, _checks.integer(f"epochs[{k}]", e, low=0))
        out.append(float(history.eig_W[i].imag.max()))
    return out


def agent_at(history: History, epoch: int, agent: TrackingRNN | None = None
             ) -> tuple[int, TrackingRNN]:
    """The network of the first snapshot at or after ``epoch``: returns (its epoch, the
    network). W_in comes from the history's snapshot where recorded (the authors' twin trains
    it), else from ``agent``; dt and tau from ``agent`` if given, else from the history's
    config, so a loaded history rebuilds its networks alone."""
    history_with(history, "snapshot_epoch")
    i = record_index(history.snapshot_epoch, epoch)
    if agent is not None:
        _checks.instance("agent", agent, TrackingRNN)
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


def history_with(history, name, columns=None) -> None:
    """TypeError/ValueError unless ``history`` is a History recording ``name`` (with
    ``columns`` entries per row, if given)."""
    _checks.instance("history", history, History)
    if name not in history.arrays:
        raise ValueError(f"history records no {name!r} (a tracking history has it)")
    a = history.arrays[name]
    if columns is not None and (a.ndim != 2 or a.shape[1] != columns):
        raise ValueError(f"history's {name} must have {columns} columns (one per sinusoid of "
                         f"refs), got shape {a.shape}")


def _window(recorded, start: int, end: int, max_gap: int, what: str) -> tuple[int, int]:
    """Rows (i0, i1), inclusive, of the strided ``recorded`` epochs that show the window
    [start, end] (``record_index``: the first record at or after ``start``; the last at or
    before ``end``, or the run's last); ValueError where the records leave a gap of more than
    ``max_gap`` epochs in it (a disturbance of tens of epochs needs records every few)."""
    recorded = np.asarray(recorded)
    end = min(end, int(recorded[-1]))
    i0 = record_index(recorded, start)
    i1 = max(i0, int(np.searchsorted(recorded, end, side="right")) - 1)
    edges = np.concatenate([[start], recorded[i0:i1 + 1], [end]])
    if np.diff(edges).max(initial=0) > max_gap:
        raise ValueError(f"the {what} records are too sparse for the window of epochs {start} "
                         f"to {end}: a gap of {int(np.diff(edges).max())} epochs, more than "
                         f"max_gap={max_gap} (train with records every {max_gap} epochs or "
                         f"fewer, or pass a larger max_gap for a coarser measure)")
    return i0, i1


def probe_rise(history: History, k: int, epoch: int, before: int = 100, after: int = 50,
               max_gap: int = 5) -> dict:
    """How far probe k's loss rises in the window of epochs [epoch - before, epoch + after]:
    ``start`` (its value at the window's first record, in the history's units), ``peak`` (its
    largest value in the window) at ``peak_epoch``, and ``rise`` = peak / start - 1
    (dimensionless; 0 when it never exceeds its start). Probe records more than ``max_gap``
    epochs apart in the window: ValueError. Introduced in Chapter 4, section "Learning a
    frequency disturbs the others"."""
    history_with(history, "probe_loss")
    if history.probe_loss.ndim != 2:
        raise ValueError(f"history must be one run (take an ensemble's member), got "
                         f"probe_loss of shape {history.probe_loss.shape}")
    k = _checks.integer("k", k, low=0, high=history.probe_loss.shape[1] - 1)
    epoch = _checks.integer("epoch", epoch, low=0)
    before, after = (_checks.integer(n, v, low=0) for n, v in (("before", before),
                                                                ("after", after)))
    max_gap = _checks.integer("max_gap", max_gap, low=1)
    epochs = probe_epochs(history)
    i0, i1 = _window(epochs, max(epoch - before, 0), epoch + after, max_gap, "probe-loss")
    loss = np.asarray(history.probe_loss[i0:i1 + 1, k], dtype=float)
    i = int(np.argmax(loss))
    return dict(start=float(loss[0]), peak=float(loss[i]), peak_epoch=int(epochs[i0 + i]),
                rise=float(loss[i] / loss[0] - 1))


def acquisition_rises(history: History, learned, before: int = 100, after: int = 50,
                      max_gap: int = 5) -> list:
    """The disturbance of every learned frequency by every later acquisition of a higher one:
    for each frequency k first learned at ``learned[k]`` (epochs, low to high frequency,
    None: never) and each lower frequency j < k learned at least ``before`` epochs earlier
    (so the window starts after it was learned), ``probe_rise`` of j around ``learned[k]``,
    as dict(new=k, old=j, epoch=learned[k], start, peak, peak_epoch, rise); in order of k,
    then j. Introduced in Chapter 4, section "Learning a frequency disturbs the others"."""
    learned = _learned(learned)
    return [dict(new=k, old=j, epoch=e, **probe_rise(history, j, e, before, after, max_gap))
            for k, e in enumerate(learned) if e is not None
            for j in range(k) if learned[j] is not None and learned[j] <= e - before]


def quiet_rises(history: History, learned, before: int = 100, after: int = 50,
                max_gap: int = 5, avoid=None, margin: int = 50) -> np.ndarray:
    """The same rise (``probe_rise``'s, dimensionless) in windows of the same length,
    ``before + after`` epochs, where no other frequency is acquired: the rises that noise and
    drift alone give. For each learned frequency j, windows tiled end to end from
    ``learned[j] + after`` (past its own acquisition) to the run's end; a window is dropped if
    it overlaps [learned[k] - before, learned[k] + after] of another frequency k, or, with
    ``avoid`` (``loss_spikes`` of the run), if it meets one of them (``near_spike``, widened by
    ``margin`` epochs). (R,), in order of j, then epoch. Introduced in Chapter 4, section
    "Learning a frequency disturbs the others"."""
    learned = _learned(learned)
    before, after = (_checks.integer(n, v, low=0) for n, v in (("before", before),
                                                                ("after", after)))
    avoid = [] if avoid is None else avoid
    length, last = max(before + after, 1), int(probe_epochs(history)[-1])
    out = []
    for j, ej in enumerate(learned):
        s = None if ej is None else ej + after
        while s is not None and s + length <= last:
            if all(e is None or s + length < e - before or s > e + after
                   for k, e in enumerate(learned) if k != j) and not near_spike(
                       avoid, s, s + length, margin):
                out.append(probe_rise(history, j, s, 0, length, max_gap)["rise"])
            s += length
    return np.array(out, dtype=float)


def loss_spikes(history: History, factor: float = 1.05, window: int = 50, gap: int = 25,
                of: str = "expected_loss") -> list:
    """The loss spikes of one run: the epochs at which the recorded loss ``of`` (one value per
    epoch; by default the expected loss, the phase average of the training loss, which carries
    no batch noise) exceeds ``factor`` times the median of its ``window`` values before; flagged
    epochs at most ``gap`` apart make one spike. A spike is the whole loss jumping at once, as
    Adam overshoots near the edge of stability (the gradient norm then jumps too, but the
    tracking history does not record it), not one probe loss bumping while another falls.
    Returns, in order, dict(start, end: its first and last flagged epoch, peak: the flagged
    epoch of the largest ratio, ratio: that loss over its median before). The default, from
    Chapter 4's paper-scale runs in float64 and float32 (4 runs each): outside the spikes
    the expected loss never rose more than 3.8% above that median (rarely 0.5%), the spikes
    jumped by 6.8% to 122%; factors 1.03 to 1.05 find the same windows, 1.1 misses a 6.8%
    spike that carries a 132% probe-loss rise. Introduced in
    Chapter 4, section "Learning a frequency disturbs the others"."""
    history_with(history, of)
    factor = _checks.real("factor", factor, low=1.0)
    window = _checks.integer("window", window, low=1)
    gap = _checks.integer("gap", gap, low=1)
    x = np.asarray(history.arrays[of], dtype=float)
    if x.ndim != 1:
        raise ValueError(f"history must be one run (take an ensemble's member), got {of} of "
                         f"shape {x.shape}")
    epochs = np.asarray(history.epoch)
    if epochs.shape != x.shape:
        raise ValueError(f"{of} must have one value per epoch, got {x.size} for "
                         f"{epochs.size} epochs")
    if x.size < 2:
        return []
    before = np.lib.stride_tricks.sliding_window_view(
        np.pad(x, (window, 0), constant_values=np.nan), window)[1:-1]  # row i: x[i-window:i]
    with np.errstate(invalid="ignore"):
        ratio = np.concatenate([[1.0], x[1:] / np.nanmedian(before, axis=-1)])
    spikes = []
    for i in np.flatnonzero(ratio > factor):
        if spikes and epochs[i] - spikes[-1]["end"] <= gap:
            spikes[-1]["end"] = int(epochs[i])
            if ratio[i] > spikes[-1]["ratio"]:
                spikes[-1].update(peak=int(epochs[i]), ratio=float(ratio[i]))
        else:
            spikes.append(dict(start=int(epochs[i]), peak=int(epochs[i]), end=int(epochs[i]),
                               ratio=float(ratio[i])))
    return spikes


def near_spike(spikes, start: int, end: int, margin: int = 50) -> bool:
    """Whether the window of epochs [start, end] meets one of ``spikes`` (``loss_spikes``),
    each widened by ``margin`` epochs on both sides: the probe losses start to move an epoch
    or two before the expected loss crosses the factor, and take some dozen epochs to settle
    after it. Introduced in Chapter 4, section "Learning a frequency disturbs the others"."""
    margin = _checks.integer("margin", margin, low=0)
    return any(sp["start"] - margin <= end and sp["end"] + margin >= start for sp in spikes)


def _learned(learned) -> list:
    """``learned`` checked: a list of epochs (ints >= 0) or None."""
    if not isinstance(learned, (list, tuple)):
        raise TypeError(f"learned must be a list of epochs (or None), got "
                        f"{_checks.short(learned)}")
    return [None if e is None else _checks.integer(f"learned[{k}]", e, low=0)
            for k, e in enumerate(learned)]


def pair_paths(history: History, omega_old: float, omega_new: float, start: int, end: int,
               max_gap: int = 10) -> dict:
    """Two eigenvalues of eig(W - I)/tau (1/s, upper half plane) followed through the
    ``eig_W`` records of the window of epochs [start, end]: ``new``, the one nearest
    i ``omega_new`` (rad/s) at the window's last record, followed back record by record to its
    nearest neighbour; ``old``, the one nearest i ``omega_old`` at the first record (``new``'s
    eigenvalue there excluded), followed forward the same way (never onto ``new``'s).
    Returns ``epochs`` (R,), ``old`` and ``new`` (R,) complex, and ``shift``, the largest
    distance (1/s) of ``old`` from where it started. Records more than ``max_gap`` epochs
    apart in the window: ValueError. Introduced in Chapter 4, section "Learning a frequency
    disturbs the others"."""
    history_with(history, "eig_W")
    if history.eig_W.ndim != 2:
        raise ValueError(f"history must be one run (take an ensemble's member), got eig_W of "
                         f"shape {history.eig_W.shape}")
    omega_old, omega_new = (_checks.real(n, v, low=0.0, low_open=True)
                            for n, v in (("omega_old", omega_old), ("omega_new", omega_new)))
    start, end = _checks.integer("start", start, low=0), _checks.integer("end", end, low=0)
    if end < start:
        raise ValueError(f"end must not come before start, got {start} and {end}")
    max_gap = _checks.integer("max_gap", max_gap, low=1)
    i0, i1 = _window(history.eig_epoch, start, end, max_gap, "eig_W")
    upper = [ev[ev.imag > 0] for ev in history.eig_W[i0:i1 + 1]]
    if any(ev.size < 2 for ev in upper):
        raise ValueError("every eig_W record in the window needs two eigenvalues with a "
                         "positive imaginary part (a pair to follow, and the new one)")
    new = [upper[-1][np.argmin(np.abs(upper[-1] - 1j * omega_new))]]
    for ev in upper[-2::-1]:
        new.append(ev[np.argmin(np.abs(ev - new[-1]))])
    new = np.array(new[::-1])
    old = [omega_old * 1j]
    for ev, nw in zip(upper, new):
        ev = ev[ev != nw]
        old.append(ev[np.argmin(np.abs(ev - old[-1]))])
    old = np.array(old[1:])
    return dict(epochs=np.asarray(history.eig_epoch[i0:i1 + 1]), old=old, new=new,
                shift=float(np.abs(old - old[0]).max()))
