"""Chapter 4's claims (the motor tracking task): one function a section, each returning the
``{glue name: value}`` its prose reads. The measurements themselves are in
``closedloop.tracking`` (acquisition epochs, excursion, frequency matches); here they are
put in the units and words the chapter states them in.

Units: losses in the history's units (the convention's, dt-weighted for the authors'),
epochs count updates, rates in 1/s, angular frequencies in rad/s, times in seconds.
"""

from __future__ import annotations

import math
import time

import numpy as np
from scipy.stats import spearmanr

from .. import _checks, tracking
from ..history import History
from . import Words, standard_errors


def task(scoring: tracking.Scoring) -> dict:
    """Section "The task": ``convention_name`` (the scoring's convention, described, as
    code), ``ref_power`` (the loss of doing nothing, per sinusoid, after the ramp) and
    ``silent_loss`` (the loss of doing nothing over an episode, all sinusoids)."""
    _checks.instance("scoring", scoring, tracking.Scoring)
    return {"convention_name": Words(f"`{scoring.convention.describe()}`"),
            "ref_power": scoring.power[0].item(),
            "silent_loss": scoring.silent_losses().sum().item()}


def schedule_words(convention, epochs: int, final_epoch: int) -> Words:
    """Which epochs update, for ``epochs`` updates whose final network is recorded at epoch
    ``final_epoch``: with no update at epoch 0 (the authors'), epochs 1 to ``epochs``."""
    if not convention.update_at_epoch0:
        return Words(f"As in the authors' code, epoch 0 only records: the {epochs} updates are "
                     f"those of epochs 1 to {epochs}, and the final network is recorded at "
                     f"epoch {final_epoch}.")
    return Words(f"Every epoch from 0 updates; the final network is recorded at epoch "
                 f"{final_epoch}.")


def clamp_words(clamped: list) -> Words:
    """When the clamp acted (``clamped``: the epochs whose batch reached it, in order): empty
    if never; else its first and last epoch, and why it acts where the last is at epoch 100
    or later (tracking itself needs high speeds), not only at the runaway start."""
    if not clamped:
        return Words("")
    why = (": besides the first epochs, the clamp acts while the network learns to track, "
           "because perfect tracking of the $y$ reference already needs speeds up to "
           "$A(\\omega_2 + \\omega_4) = 8.7$, so an overshoot reaches the bound."
           if clamped[-1] >= 100 else
           ", all within the first 100 epochs, from the runaway start.")
    return Words(f"The first was at epoch {clamped[0]} and the last at epoch {clamped[-1]}"
                 + why)


def stability_words(slowest: complex, rho: float) -> Words:
    """Whether the trained closed loop is stable: ``slowest`` is the rate (1/s, complex) of
    its least stable mode (``tracking.closed_loop_rates(...)[0]``), ``rho`` the spectral
    radius of its matrix M. Stable: the decay rate, and the period 2 pi / |Im| (s) if it
    oscillates; else the growth rate, the period, and why training lets it be."""
    period = 2 * math.pi / max(abs(slowest.imag), 1e-12)
    if slowest.real < 0:
        return Words(f"The trained loop is stable: its least stable mode decays at rate "
                     f"{-slowest.real:.3f} per second ($\\rho(M) =$ {rho:.4f})"
                     + (f" and oscillates with a period of {period:.0f} s."
                        if abs(slowest.imag) > 1e-9 else "."))
    return Words(f"The trained loop is not strictly stable. Its least stable mode has growth "
                 f"rate {slowest.real:.3f} per second ($\\rho(M) =$ {rho:.4f}) and oscillates "
                 f"with a period of {period:.0f} s. Training sees only 30 s, in which such a "
                 f"slow mode is barely excited: the horizon effect of {{ref}}`Chapter 2 <ch2>`.")


def training(history: History, convention, acquired: list, learned: list,
             slowest: complex) -> dict:
    """Section "Training", for the closed-loop run's ``history`` under ``convention``:
    ``epochs_used`` and ``batch_used`` (its updates and batch size), ``train_seconds``, the
    test loss at the start and at the end (``initial_test_loss``,
    ``final_test_loss_closed``), how many batches reached the clamp (``clamped_epochs``, and
    when: ``clamp_words``), the spectral radius of the closed loop at the start and at the
    end (``initial_rho``, ``final_rho``), the largest state over all phases at the end
    (``final_worst_state``), the acquisition epochs (``acquisition_epochs``: for good,
    ``learned_epochs``: first), and ``schedule_words`` and ``stability_words`` (``slowest``:
    the least stable closed-loop rate, 1/s)."""
    _checks.instance("history", history, History)
    clamped = tracking.clamped_epochs(history)
    epochs, rho = history.config["epochs"], history.spectral_radius
    return {"schedule_words": schedule_words(convention, epochs, int(history.epoch[-1])),
            "train_seconds": history.seconds,
            "epochs_used": epochs,
            "batch_used": history.config["batch"],
            "initial_test_loss": float(history.test_loss[0]),
            "final_test_loss_closed": float(history.test_loss[-1]),
            "clamped_epochs": len(clamped),
            "clamp_words": clamp_words(clamped),
            "initial_rho": float(rho[0]),
            "final_rho": float(rho[-1]),
            "final_worst_state": float(history.worst_state[-1]),
            "acquisition_epochs": acquired,
            "learned_epochs": learned,
            "stability_words": stability_words(slowest, float(rho[-1]))}


def w_in_choice(convention) -> str:
    """What a twin trained under ``convention`` does with its input weights, as a phrase."""
    return "trains $W_\\text{in}$" if convention.twin_trains_W_in else \
        "keeps $W_\\text{in}$ fixed"


def twin_words(convention, other, recovered: bool, other_recovered: bool) -> dict:
    """The words of section "Open-loop twin" for the twin trained under ``convention`` and
    the one under ``other`` (the other choice for W_in), from whether each ``recovered``
    (ended below half its peak test loss): which choice each makes, and whether the
    comparison singles out that choice (exactly one of them recovers)."""
    back, stuck = (convention, other) if recovered else (other, convention)
    mechanism = (f"The comparison above measures what this choice does: the twin that "
                 f"{w_in_choice(back)} comes back, the twin that {w_in_choice(stuck)} does "
                 f"not within the run." if recovered != other_recovered else
                 "In this run the two twins end alike (both recover, or neither does), so the "
                 "comparison does not single out this choice.")
    return {"other_twin_words": Words(f"it {w_in_choice(other)}"),
            "twin_trains_words": Words(f"the twin that {w_in_choice(convention)}"),
            "other_trains_words": Words(f"The twin that {w_in_choice(other)}"),
            "mechanism_words": Words(mechanism),
            "twin_course_words": Words(
                "then falls back: it ends below half its peak" if recovered else
                "and does *not* fall back to below half its peak within the run"),
            "other_course_words": Words("recovers too" if other_recovered else
                                        "does not recover")}


def twin(history: History, h_twin: History, h_other: History, initial, trained_twin,
         convention, other) -> dict:
    """Section "Open-loop twin": the closed-loop test loss of the twin (``h_twin``, trained
    under ``convention``) at the start, at its peak (and the peak's epoch) and at the end
    (also over its peak and over the closed-loop network's final, from ``history``); its
    final imitation loss; its final spectral radius and the share of recorded epochs its loop
    ran away; the same for the twin with the other choice for W_in (``h_other``, under
    ``other``); how far the twin's input weights moved from ``initial``'s
    (``W_in_moved_pos``: the columns reading x, y; ``W_in_moved_ref``: r_x, r_y; relative
    Frobenius norms); ``twin_seconds``; and the words of ``twin_words``."""
    for name, h in (("history", history), ("h_twin", h_twin), ("h_other", h_other)):
        _checks.instance(name, h, History)
    ex, ex_other = tracking.excursion(h_twin), tracking.excursion(h_other)
    return {"twin_seconds": h_twin.seconds + h_other.seconds,
            "open_start_test_loss": ex["start"],
            "final_test_loss_open": ex["final"],
            "open_peak_test_loss": ex["peak"],
            "open_peak_epoch": ex["peak_epoch"],
            "open_final_over_peak": ex["final"] / ex["peak"],
            "open_final_over_closed": ex["final"] / float(history.test_loss[-1]),
            "twin_final_imitation": float(h_twin.loss[-1]),
            "twin_final_rho": float(h_twin.spectral_radius[-1]),
            "twin_unstable_share": tracking.unstable_share(h_twin),
            "other_final_test_loss": ex_other["final"],
            "other_peak_test_loss": ex_other["peak"],
            "other_final_rho": float(h_other.spectral_radius[-1]),
            "other_unstable_share": tracking.unstable_share(h_other),
            "W_in_moved_pos": tracking.input_weight_change(initial, trained_twin, [0, 1]),
            "W_in_moved_ref": tracking.input_weight_change(initial, trained_twin, [2, 3]),
            **twin_words(convention, other, ex["recovered"], ex_other["recovered"])}


def order_words(epochs: list) -> Words:
    """Whether acquisition ``epochs`` (low to high frequency, None: never) come in order of
    frequency (``tracking.in_order``), and whether all were learned within the run."""
    if not tracking.in_order(epochs):
        return Words("*not* in order of frequency")
    return Words("in order of frequency" + ("" if None not in epochs else
                                            " (as far as they were learned within the run)"))


def acquisition(history: History, scoring: tracking.Scoring, response: tracking.Response,
                acquired: list, learned: list, fraction: float, window: int) -> dict:
    """Section "Frequencies are acquired one at a time": the rule's threshold ``fraction``
    (of the reference power) and running-median ``window`` (epochs), whether the epochs
    ``acquired`` (for good) and ``learned`` (first) are in order (``order_words``) and alike
    (``lists_compare``), the smallest share of a final probe loss incurred in the first 10 s
    (``transient_share_min``, of the final network's linear ``response``), and the lowest
    frequency's final probe loss over its reference power (``low_final``)."""
    _checks.instance("history", history, History)
    return {"acq_fraction_used": fraction,
            "acq_window_used": window,
            "acquired_in_order": order_words(acquired),
            "learned_in_order": order_words(learned),
            "lists_compare": Words("the same" if acquired == learned else "different"),
            "transient_share_min": float(response.transient_share(10.0).min()),
            "low_final": float(history.probe_loss[-1, 0] / scoring.power[0])}


def eigenvalues(agent: tracking.TrackingRNN, history: History, refs: tracking.Sinusoids,
                learned: list) -> dict:
    """Section "Eigenvalues line up with the target frequencies": the distance (rad/s) from
    each target omega_k to the nearest imaginary part of the final ``agent``'s
    eig(W - I)/tau (``eig_freq_match_each``, rounded to 3 decimals; ``eig_freq_match``: the
    largest), and the largest imaginary part at each first-learned epoch
    (``top_im_at_learned``, rad/s, rounded to 2 decimals; None: never learned) and at each of
    the authors' acquisition epochs (``top_im_at_authors``; None past this run's last eig record),
    which tells whether the gap to their values is when it is read or what was learned: the
    median distance to their values (``tracking.AUTHORS_TOP_IM``) read either way
    (``gap_at_learned``, ``gap_at_authors``, rad/s; NaN: nothing to compare) and which is
    smaller, in words (``reading_words``)."""
    match = tracking.frequency_match(agent.rate_eigenvalues(), refs.omega.numpy())
    last = int(history.eig_epoch[-1])
    theirs = [e if e <= last else None for e in tracking.AUTHORS_ACQUISITION]
    at_learned = _rounded(tracking.largest_frequency(history, learned))
    at_authors = _rounded(tracking.largest_frequency(history, theirs))
    gap = lambda read: float(np.median([abs(v - a) for v, a in zip(read, tracking.AUTHORS_TOP_IM)
                                        if v is not None] or [math.nan]))
    g_own, g_theirs = gap(at_learned), gap(at_authors)
    closer = g_theirs < g_own
    words = (f"closer to theirs (a median **{g_theirs:.2f}** rad/s from their values, against "
             f"**{g_own:.2f}** at this network's own first-learned epochs): much of the gap is "
             f"when the spectrum is read" if closer else
             f"no closer to theirs (a median **{g_theirs:.2f}** rad/s from their values, against "
             f"**{g_own:.2f}** at this network's own first-learned epochs): the gap is not "
             f"when the spectrum is read")
    return {"eig_freq_match": float(match.max()),
            "eig_freq_match_each": [round(float(m), 3) for m in match],
            "top_im_at_learned": at_learned, "top_im_at_authors": at_authors,
            "gap_at_learned": g_own, "gap_at_authors": g_theirs,
            "reading_words": Words(words)}


def _rounded(values: list) -> list:
    """Frequencies (rad/s) to 2 decimals, None kept."""
    return [None if v is None else round(v, 2) for v in values]


def seeds(seeds_used: list, learned: list, acquired: list, epochs: int | None = None) -> dict:
    """Section "Compared with people", over runs from several seeds (``seeds_used``, this
    chapter's first; ``learned`` and ``acquired``: each run's first-learned and acquired
    epochs): ``n_seeds_used`` (the further seeds), ``n_runs``, how many runs first learned
    (``n_first_ordered``) and acquired for good (``n_acq_ordered``) the frequencies in order,
    of the runs that learned or acquired at least two (``n_first_comparable``,
    ``n_acq_comparable``; a run with one frequency or none shows no order),
    and the further seeds' acquisition epochs (``other_acquisition_epochs``). With
    ``epochs`` (the updates run): this chapter's acquisition epochs divided by it
    (``acquired_normalized``, 3 decimals, None: never), the times the human data are
    compared with."""
    _checks.seeds("seeds_used", seeds_used)
    if not (isinstance(seeds_used, list) and isinstance(learned, list)
            and isinstance(acquired, list)) or not (
            len(seeds_used) == len(learned) == len(acquired)):
        raise ValueError(f"seeds_used, learned and acquired must be lists of one entry per "
                         f"run, this chapter's first, got {_checks.short(seeds_used)}, "
                         f"{_checks.short(learned)} and {_checks.short(acquired)}")
    return {"n_seeds_used": len(seeds_used) - 1,
            "seeds_used": seeds_used,
            "n_runs": len(acquired),
            "n_first_ordered": tracking.n_in_order(learned),
            "n_first_comparable": tracking.n_comparable(learned),
            "n_acq_ordered": tracking.n_in_order(acquired),
            "n_acq_comparable": tracking.n_comparable(acquired),
            "other_acquisition_epochs": acquired[1:],
            **({} if epochs is None else {"acquired_normalized": [
                None if t is None else round(t, 3)
                for t in tracking.normalized(acquired[0], epochs)]})}


def sampled_vs_exact(batch_losses, exact_value: float) -> dict:
    """Section "Sampled and exact loss": ``n_batches_used`` (batches drawn) and how far their
    mean loss lies from the exact expected loss ``exact_value``, in standard errors
    (``modes_gap_sigma``, unsigned)."""
    return {"n_batches_used": len(batch_losses),
            "modes_gap_sigma": abs(standard_errors(batch_losses, exact_value))}


def exact_mode(h_runs: History, h_exact: History, history: History, exact_learned: list,
               learned: list) -> dict:
    """Section "Sampled and exact loss", the exact-mode run (``h_exact``, a member of the
    ensemble ``h_runs``) against the sampled one (``history``): the ensemble's runs and
    seconds, the exact run's first-learned epochs (and whether in order), both runs' final
    expected loss, and whether the exact run was no faster at any frequency
    (``exact_speed_words``)."""
    for name, h in (("h_runs", h_runs), ("h_exact", h_exact), ("history", history)):
        _checks.instance(name, h, History)
    slower = tracking.no_earlier(exact_learned, learned)
    return {"ensemble_seconds": h_runs.seconds,
            "ensemble_runs": int(h_runs.loss.shape[1]),
            "exact_learned_epochs": exact_learned,
            "exact_learned_in_order": order_words(exact_learned),
            "exact_final_loss": float(h_exact.expected_loss[-1]),
            "sampled_final_loss": float(history.expected_loss[-1]),
            "exact_speed_words": Words(
                "Here the exact run was also slower at every frequency, which suggests that "
                "the noise of small batches helps to leave the plateaus." if slower else
                "Here the exact run was not slower at every frequency.")}


def interference(history: History, h_runs: History, h_exact: History,
                 refs: tracking.Sinusoids, seeds_used: list, learned: list, other_learned: list,
                 exact_learned: list, before: int = 100, after: int = 50,
                 spike_factor: float = 1.05, spike_window: int = 50,
                 spike_margin: int = 50) -> dict:
    """Section "Learning a frequency disturbs the others": how far the probe loss of every
    learned lower frequency rises around each later first-learned epoch, in the window of
    epochs [e - ``before``, e + ``after``] (``tracking.acquisition_rises``: peak over the
    window / value at its start - 1, dimensionless), over the sampled runs: this chapter's
    (``history``, first-learned epochs ``learned``, seed ``seeds_used[0]``) and the further
    seeds' (members of ``h_runs`` in order, ``other_learned``, ``seeds_used[1:]``).

    Returns the window (``rise_before``, ``rise_after``), ``n_rise_events`` and
    ``rise_median``, ``rise_max`` (NaN: no event) with ``rise_max_words`` (which probe,
    which acquisition, which seed); the control (``tracking.quiet_rises``: windows of the
    same length with no acquisition, all runs) ``n_quiet``, ``quiet_rise_median``,
    ``quiet_rise_p90`` and ``n_above_quiet`` (events above that 90th percentile); the
    paper's case, the 0.1 Hz probe around 0.2 Hz's first-learned epoch: this run's
    ``rise_case`` (NaN: not measurable), its start and peak over the reference power
    (``rise_case_start``, ``rise_case_peak``) and the peak's epoch after the first-learned
    one (``rise_case_peak_offset``), every sampled run's (``rise_case_runs``, percent to 1
    decimal, None: not measurable; ``rise_case_clean_runs``: 'spike' where a loss spike meets
    the window) and the exact-mode run's (``h_exact``, ``exact_learned``; ``rise_case_exact``,
    with the largest rise in its quiet windows, ``exact_quiet_max``).

    Told apart from Adam's loss spikes (``tracking.loss_spikes`` of each run, ``spike_factor``
    and ``spike_window``; a window within ``spike_margin`` epochs of one meets it,
    ``tracking.near_spike``): ``spike_jump`` (factor - 1), ``spike_window``, ``spike_margin``;
    spikes per sampled run (``n_spikes_runs``), in all (``n_spikes``), in the exact-mode run
    (``n_spikes_exact``, peaks at ``spike_epochs_exact``), the largest jump, ratio - 1
    (``spike_jump_max``); the events a spike meets (``n_spiked_events``, ``spiked_rise_median``,
    ``spiked_rise_max``, ``spiked_words``: which acquisitions, the exact-mode run's too) and the
    others (``n_clean_events``, ``clean_rise_median``, ``clean_rise_max``,
    ``clean_rise_max_words``) against the quiet windows none meets (``n_quiet_clean``,
    ``clean_quiet_median``, ``clean_quiet_p90``, ``n_above_clean_quiet``; ``clean_words``: is
    the median rise above it); ``case_spike_words`` (the sampled runs whose case a spike meets);
    ``exact_quiet_clean_max`` and ``exact_case_words`` (not measurable, met by a spike,
    standing out above those quiet windows or not); ``number_format`` (the runs' dtype, as
    code). NaN: nothing to measure. And on eig(W - I)/tau of this run, from
    ``pair_shifts``: the pair nearest the learned frequency and the new pair in the paper's
    case (``case_old_im``, ``case_old_shift``, ``case_new_from``, ``case_new_to``, rad/s,
    NaN: not measurable), the event whose learned pair moved most (``max_shift`` rad/s,
    ``max_shift_rise``, ``max_shift_words``) and the rank correlation of shift and rise over
    this run's events (``shift_rise_corr``, NaN under 3 events; ``n_main_events``,
    ``shift_words``)."""
    for name, h in (("history", history), ("h_runs", h_runs), ("h_exact", h_exact)):
        _checks.instance(name, h, History)
    _checks.instance("refs", refs, tracking.Sinusoids)
    _checks.seeds("seeds_used", seeds_used)
    if not (isinstance(seeds_used, list) and isinstance(other_learned, list)) or \
            len(seeds_used) != len(other_learned) + 1:
        raise ValueError(f"seeds_used must list this chapter's seed and one seed per run of "
                         f"other_learned, got {_checks.short(seeds_used)} and "
                         f"{_checks.short(other_learned)}")
    runs = [(seeds_used[0], history, learned)] + [
        (s, h_runs.member(i), e) for i, (s, e) in enumerate(zip(seeds_used[1:], other_learned))]
    spikes = [tracking.loss_spikes(h, spike_factor, spike_window) for _, h, _ in runs]
    exact_spikes = tracking.loss_spikes(h_exact, spike_factor, spike_window)

    def spiked(sp, ev):
        return tracking.near_spike(sp, ev["epoch"] - before, ev["epoch"] + after, spike_margin)

    run_events = [tracking.acquisition_rises(h, e, before, after) for _, h, e in runs]
    exact_events = tracking.acquisition_rises(h_exact, exact_learned, before, after)
    events = [dict(ev, seed=s, spiked=spiked(sp, ev))
              for (s, _, _), sp, evs in zip(runs, spikes, run_events) for ev in evs]
    rises = np.array([ev["rise"] for ev in events], dtype=float)
    hit = np.array([ev["spiked"] for ev in events], dtype=bool)
    quiet = np.concatenate([tracking.quiet_rises(h, e, before, after) for _, h, e in runs])
    quiet_clean = np.concatenate([
        tracking.quiet_rises(h, e, before, after, avoid=sp, margin=spike_margin)
        for (_, h, e), sp in zip(runs, spikes)])
    p90 = float(np.quantile(quiet, 0.9)) if quiet.size else math.nan
    p90_clean = float(np.quantile(quiet_clean, 0.9)) if quiet_clean.size else math.nan
    top = events[int(np.argmax(rises))] if events else None
    clean = [ev for ev in events if not ev["spiked"]]
    clean_top = max(clean, key=lambda ev: ev["rise"]) if clean else None
    case = [_case(evs) for evs in run_events]
    exact = _case(exact_events)
    exact_hit = exact is not None and spiked(exact_spikes, exact)
    exact_quiet = tracking.quiet_rises(h_exact, exact_learned, before, after)
    exact_quiet_clean = tracking.quiet_rises(h_exact, exact_learned, before, after,
                                             avoid=exact_spikes, margin=spike_margin)
    case_hit = [s for (s, _, _), c, sp in zip(runs, case, spikes) if c and spiked(sp, c)]
    hit_words = [f"{refs.freqs[new]:g} Hz (seed {s})" for s, new in dict.fromkeys(
        (ev["seed"], ev["new"]) for ev in events if ev["spiked"])] + [
        f"{refs.freqs[new]:g} Hz (exact-mode run)" for new in dict.fromkeys(
            ev["new"] for ev in exact_events if spiked(exact_spikes, ev))]
    jumps = [sp["ratio"] - 1 for run in spikes + [exact_spikes] for sp in run]
    power = tracking.history_scoring(history, refs).power.numpy()
    nan = math.nan
    return {"rise_before": before, "rise_after": after,
            "n_rise_events": len(events), "n_rise_runs": len(runs),
            "rise_median": float(np.median(rises)) if events else nan,
            "rise_max": float(rises.max()) if events else nan,
            "rise_max_words": Words(_event_words(refs, top) + f" (seed {top['seed']})"
                                    if top else "no event"),
            "n_quiet": int(quiet.size),
            "quiet_rise_median": float(np.median(quiet)) if quiet.size else nan,
            "quiet_rise_p90": p90,
            "n_above_quiet": int((rises > p90).sum()),
            "rise_case": case[0]["rise"] if case[0] else nan,
            "rise_case_start": float(case[0]["start"] / power[0]) if case[0] else nan,
            "rise_case_peak": float(case[0]["peak"] / power[0]) if case[0] else nan,
            "rise_case_peak_offset": case[0]["peak_epoch"] - case[0]["epoch"] if case[0]
            else None,
            "rise_case_runs": [round(100 * c["rise"], 1) if c else None for c in case],
            "rise_case_clean_runs": [("spike" if spiked(sp, c) else round(100 * c["rise"], 1))
                                     if c else None for c, sp in zip(case, spikes)],
            "rise_case_exact": exact["rise"] if exact else nan,
            "exact_quiet_max": float(exact_quiet.max()) if exact_quiet.size else nan,
            "spike_jump": round(spike_factor - 1, 9), "spike_window": spike_window,
            "spike_margin": spike_margin,
            "n_spikes_runs": [len(sp) for sp in spikes], "n_spikes": sum(map(len, spikes)),
            "n_spikes_exact": len(exact_spikes),
            "spike_epochs_exact": [sp["peak"] for sp in exact_spikes],
            "spike_jump_max": max(jumps) if jumps else nan,
            "n_spiked_events": int(hit.sum()),
            "spiked_words": Words(", ".join(hit_words) if hit_words else "none"),
            "spiked_rise_median": float(np.median(rises[hit])) if hit.any() else nan,
            "spiked_rise_max": float(rises[hit].max()) if hit.any() else nan,
            "n_clean_events": len(clean),
            "clean_rise_median": float(np.median(rises[~hit])) if clean else nan,
            "clean_rise_max": clean_top["rise"] if clean else nan,
            "clean_rise_max_words": Words(_event_words(refs, clean_top) + f" (seed "
                                          f"{clean_top['seed']})" if clean_top else "no event"),
            "n_quiet_clean": int(quiet_clean.size),
            "clean_quiet_median": float(np.median(quiet_clean)) if quiet_clean.size else nan,
            "clean_quiet_p90": p90_clean,
            "n_above_clean_quiet": int((rises[~hit] > p90_clean).sum()),
            "clean_words": Words(
                "there are no such acquisitions to compare" if not clean or
                math.isnan(p90_clean) else
                "the typical acquisition disturbs the learned frequencies more than nine in "
                "ten quiet stretches do" if np.median(rises[~hit]) > p90_clean else
                "the typical acquisition disturbs the learned frequencies no more than the "
                "quiet stretches do"),
            "number_format": Words(f"`{np.asarray(history.probe_loss).dtype}`"),
            "case_spike_words": Words(
                "no loss spike comes near these windows" if not case_hit else
                "a loss spike comes near the window of seed"
                + ("s " if len(case_hit) > 1 else " ") + ", ".join(map(str, case_hit))),
            "exact_quiet_clean_max": float(max(exact_quiet_clean, default=nan)),
            "exact_case_words": Words(
                "that run did not learn 0.2 Hz late enough to measure it" if not exact else
                "a loss spike comes near that window, so there that run cannot tell the two "
                "apart" if exact_hit else
                "without sampling noise, no rise stands out" if exact_quiet_clean.size and
                exact["rise"] <= exact_quiet_clean.max() or exact["rise"] <= 0 else
                "the disturbance does not need sampling noise"),
            **pair_shifts(history, refs, run_events[0], before, after)}


def _case(events: list) -> dict | None:
    """The paper's case among a run's events: probe 0 (0.1 Hz) around 1's (0.2 Hz)."""
    return next((ev for ev in events if (ev["new"], ev["old"]) == (1, 0)), None)


def _event_words(refs: tracking.Sinusoids, event: dict) -> str:
    """``the 0.1 Hz probe while 0.2 Hz was acquired``, for an event of acquisition_rises."""
    return (f"the {refs.freqs[event['old']]:g} Hz probe while {refs.freqs[event['new']]:g} Hz "
            f"was acquired")


def pair_shifts(history: History, refs: tracking.Sinusoids, events: list, before: int,
                after: int) -> dict:
    """eig(W - I)/tau of one run around its ``events`` (``tracking.acquisition_rises`` of
    ``history``, window [epoch - ``before``, epoch + ``after``]): for each, how far the
    eigenvalue nearest the learned frequency moved (``tracking.pair_paths``' shift, rad/s).
    Returns, for the paper's case (0.1 Hz learned, 0.2 Hz new; NaN: not among the events),
    the learned pair's imaginary part at the window's start and its shift
    (``case_old_im``, ``case_old_shift``) and the new pair's imaginary part at the start and
    the end (``case_new_from``, ``case_new_to``); the event whose learned pair moved most
    (``max_shift``, ``max_shift_rise``, ``max_shift_words``); and the Spearman rank
    correlation of shift and rise over the events (``shift_rise_corr``, NaN under 3),
    ``n_main_events`` and ``shift_words``. Section "Learning a frequency disturbs the
    others"."""
    omega = refs.omega.numpy()
    paths = [tracking.pair_paths(history, omega[ev["old"]], omega[ev["new"]],
                                 max(ev["epoch"] - before, 0), ev["epoch"] + after)
             for ev in events]
    shifts = np.array([p["shift"] for p in paths], dtype=float)
    rises = np.array([ev["rise"] for ev in events], dtype=float)
    nan = math.nan
    corr = float(spearmanr(shifts, rises).statistic) if len(events) >= 3 else nan
    i = next((n for n, ev in enumerate(events) if (ev["new"], ev["old"]) == (1, 0)), None)
    m = int(np.argmax(shifts)) if len(events) else None
    return {"case_old_im": nan if i is None else float(paths[i]["old"][0].imag),
            "case_old_shift": nan if i is None else float(shifts[i]),
            "case_new_from": nan if i is None else float(paths[i]["new"][0].imag),
            "case_new_to": nan if i is None else float(paths[i]["new"][-1].imag),
            "max_shift": nan if m is None else float(shifts[m]),
            "max_shift_rise": nan if m is None else float(rises[m]),
            "max_shift_words": Words("no event" if m is None else _event_words(refs, events[m])),
            "shift_rise_corr": corr,
            "n_main_events": len(events),
            "shift_words": Words(
                "too few events to compare shift and rise" if math.isnan(corr) else
                "the further the learned pair is pushed, the more its probe loss rises"
                if corr > 0.5 else "the rise does not follow the learned pair's shift closely")}


def run_time(stepped_seconds: float, epochs: int, start: float) -> dict:
    """Section "Run it yourself": ``stepped_minutes``, what ``epochs`` updates would take at
    ``stepped_seconds`` per stepped batch, and ``chapter_seconds``, the time since ``start``
    (a ``time.perf_counter()`` reading)."""
    return {"stepped_minutes": stepped_seconds * epochs / 60,
            "chapter_seconds": time.perf_counter() - start}
