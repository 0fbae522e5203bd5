"""Chapter 1's claims: the same tanh network trained closed loop and open loop.

One function a section of ``book/ch1_open_closed.ipynb``; each returns ``{glue name: value}``.
Test losses are the authors' summed state cost over the episode, from the chapter's fixed
starts (``gains.probe(..., units="summed")``); epochs are training epochs (0: before any
update); gains are the effective linear feedback (k1, k2) on (position, velocity).
"""

from __future__ import annotations

import math

import numpy as np

from .. import excursion, gains
from ..history import record_index
from . import Words
from . import bold as _b


def setup(pairs, *, seed: int, beta: float, epochs: int, n_test: int,
          snapshot_every: int) -> dict:
    """Section "The setup" (and "Rollouts"): the settings the prose quotes, as run.

    ``beta_used`` (weight of the batch sum of u_t^2), ``epochs_used`` (updates),
    ``seed_used`` (the reference pair's seed), ``n_test_used`` (fixed test starts),
    ``snapshot_stride`` (epochs between parameter snapshots), ``training_seconds`` (wall time
    of all the chapter's trainings, s).
    """
    return {"beta_used": beta, "epochs_used": epochs, "seed_used": seed,
            "n_test_used": n_test, "training_seconds": pairs.seconds,
            "snapshot_stride": snapshot_every}


def closed_loop(h_closed, stages, plateau) -> dict:
    """Section "Closed-loop training": the teacher's test loss at its start and end, its stage
    boundaries (epochs; None if never reached) and its plateau.

    ``plateau`` is ``excursion.find_plateau``'s (first, last) epoch or None. With one, the
    test loss's highest and lowest value on it and its first and last epoch are glued too;
    ``closed_plateau_words``, the phrase the prose reads, says it either way.
    """
    out = {"closed_start_test_loss": float(h_closed.test_loss[0]),
           "closed_final_test_loss": float(h_closed.test_loss[-1]),
           "closed_stage1_end": stages.stage1_end,
           "closed_stabilization": stages.stabilization,
           "closed_plateau_epochs": plateau}
    if plateau is None:
        words = "no plateau (no flat stretch followed by a tenfold drop)"
    else:
        e = h_closed.monitor_epoch
        on = h_closed.test_loss[(e >= plateau[0]) & (e <= plateau[1])]
        out.update(closed_plateau_first=plateau[0], closed_plateau_last=plateau[1],
                   closed_plateau_high=float(on.max()), closed_plateau_low=float(on.min()))
        words = (f"a plateau from epoch {_b(plateau[0])} to {_b(plateau[1])} on which the test "
                 f"loss stays between {_b(on.min(), '.3g')} and {_b(on.max(), '.3g')}")
    return out | {"closed_plateau_words": Words(words)}


def open_loop(pairs, seed: int) -> dict:
    """Section "Open-loop training": the reference student's excursion, how long each network
    of the pair had an unstable linearized loop, and the excursion across seeds.

    ``open_peak_epoch`` is the student's peak epoch, or its last recorded epoch if its test
    loss never rose (the epoch the figures mark).
    """
    h_closed = pairs.closed[(pairs.reference, seed)]
    h_open = pairs.open[(pairs.reference, seed)]
    return _peak(pairs.excursion(pairs.reference, seed), h_open) | _unstable(
        h_closed, h_open) | _seeds(pairs)


def _peak(ex, h_open) -> dict:
    """The student's imitation loss at its start and end, and its test-loss excursion ``ex``:
    peak epoch and test loss, peak over final and over start (NaN without a rise)."""
    peak = ex.peak_epoch if ex.peak_epoch is not None else int(h_open.monitor_epoch[-1])
    verdict = "rises above" if ex.shows else "does not rise above"
    if ex.peak_epoch is None:
        words = f"and does not climb again: it ends at {_b(ex.final_loss, '.3g')}"
    else:
        words = (f"then climbs: it peaks at epoch {_b(peak)} at {_b(ex.peak_loss, '.3g')}, "
                 f"{_b(ex.ratio, '.3g')} times its final value {_b(ex.final_loss, '.3g')} and "
                 f"{_b(ex.over_start, '.3g')} times its value at epoch 0")
    return {"open_start_train_loss": float(h_open.loss[0]),
            "open_final_train_loss": float(h_open.loss[-1]),
            "open_peak_epoch": peak, "open_peak_test_loss": ex.peak_loss,
            "open_peak_ratio": ex.ratio, "open_peak_over_start": ex.over_start,
            "open_peak_words": Words(words),
            "open_peak_verdict": Words(verdict), "open_final_test_loss": ex.final_loss}


def _unstable(h_closed, h_open) -> dict:
    """Recorded epochs with rho(P) > 1 of each network and the last of them (-1: none); the
    epoch from which the student's loop stays stable (at most its last epoch) and its
    imitation loss there as a share of its start."""
    unstable_open = h_open.eig_epoch[h_open.spectral_radius > 1]
    unstable_closed = h_closed.eig_epoch[h_closed.spectral_radius > 1]
    stable_from = min(int(unstable_open.max(initial=-1)) + 1, int(h_open.epoch[-1]))
    return {"open_unstable_epochs": len(unstable_open),
            "closed_unstable_epochs": len(unstable_closed),
            "open_last_unstable": int(unstable_open.max(initial=-1)),
            "closed_last_unstable": int(unstable_closed.max(initial=-1)),
            "open_stable_from": stable_from,
            "open_mse_at_stable": float(h_open.loss[stable_from] / h_open.loss[0])}


def _seeds(pairs) -> dict:
    """How many of the reference setting's seeds show the excursion, which seeds were run,
    and the peak epochs and peak / final ratios of those that show it ("none", NaN if none)."""
    shown = [e for e in (pairs.excursion(pairs.reference, s) for s in pairs.seeds) if e.shows]
    low = min((e.ratio for e in shown), default=math.nan)
    high = max((e.ratio for e in shown), default=math.nan)
    epochs = ", ".join(str(e.peak_epoch) for e in shown) or "none"
    words = (f"peaking at epochs {epochs}, between {_b(low, '.2g')} and {_b(high, '.2g')} times "
             f"their final value" if shown else "so no peak to report")
    return {"seeds_with_excursion": pairs.seeds_showing(), "n_seeds_used": len(pairs.seeds),
            "seeds_first": pairs.seeds[0], "seeds_last": pairs.seeds[-1],
            "seeds_peak_epochs": Words(epochs), "seeds_peak_words": Words(words),
            "seeds_min_ratio": low, "seeds_max_ratio": high}


def gain_space(h_closed, h_open, env, peak_epoch: int) -> dict:
    """Section "Gain space": effective gains (k1, k2), rounded to 3 decimals, at the start,
    the student's peak and the ends, and the LQR gain; the uncentred R^2 of the gain fits
    (lowest of both runs, final of each); the stability region (``gains.REGIONS``) at the
    start and at the peak; recorded epochs each network's gains spent unstable oscillatory,
    and how deep in that region they went (``_oscillatory``)."""
    i_peak = record_index(h_open.monitor_epoch, peak_epoch)
    region = gains.stability_region(np.stack([h_closed.gains[0], h_open.gains[i_peak]]), env)
    return {"final_gain_closed": _rounded(h_closed.gains[-1]),
            "final_gain_open": _rounded(h_open.gains[-1]),
            "peak_gain_open": _rounded(h_open.gains[i_peak]),
            "lqr_gain": _rounded(gains.lqr_feedback(env)),
            "start_gain": _rounded(h_closed.gains[0]),
            "min_r2": min(float(h_closed.gain_r2.min()), float(h_open.gain_r2.min())),
            "final_r2_closed": float(h_closed.gain_r2[-1]),
            "final_r2_open": float(h_open.gain_r2[-1]),
            "start_region": gains.REGIONS[int(region[0])],
            "peak_region": gains.REGIONS[int(region[1])],
            **_oscillatory(h_open, env, "open"), **_oscillatory(h_closed, env, "closed")}


def _oscillatory(h, env, name) -> dict:
    """``{name}_oscillatory_epochs``: the recorded epochs whose gains lie in the unstable
    oscillatory region; ``{name}_oscillatory_depth``: how far inside at most, max |lambda| - 1
    of A + B k^T there (the modulus of its complex pair, sqrt(det); 0.0 if never there)."""
    inside = gains.stability_region(h.gains, env) == 1
    det = np.linalg.det(gains.feedback_matrix(h.gains[inside], env).numpy())
    return {f"{name}_oscillatory_epochs": int(inside.sum()),
            f"{name}_oscillatory_depth": float(np.sqrt(det).max() - 1) if inside.any() else 0.0}


def _rounded(k) -> tuple:
    """A gain (k1, k2) as a tuple of floats rounded to 3 decimals (for the prose)."""
    return round(float(k[0]), 3), round(float(k[1]), 3)


def final_solutions(h_closed, h_open) -> dict:
    """Section "The final solutions": how far apart the two final networks are (test loss,
    % of the teacher's; gains, Euclidean), their final rho(P), and the largest distance of
    their gain paths over training with the recorded epoch where it occurs."""
    gap = abs(h_open.test_loss[-1] - h_closed.test_loss[-1]) / h_closed.test_loss[-1]
    path_gap = np.linalg.norm(h_open.gains - h_closed.gains, axis=-1)
    return {"final_loss_gap_percent": 100 * float(gap),
            "final_gain_distance": float(np.linalg.norm(h_open.gains[-1] - h_closed.gains[-1])),
            "final_rho_closed": float(h_closed.spectral_radius[-1]),
            "final_rho_open": float(h_open.spectral_radius[-1]),
            "max_path_gap": float(path_gap.max()),
            "max_path_gap_epoch": int(h_open.monitor_epoch[path_gap.argmax()])}


def w_alone(h_closed, h_open, stages) -> dict:
    """Section "The final solutions", eig(W) against eig(P): the spectral radius of W alone
    at the start (``rho_W_start``), at the closed-loop network's stabilization epoch (the
    first snapshot at or after it; NaN if it never stabilized) and at the end of both
    trainings, its largest value over both (``rho_W_max``), whether it ever reached 1
    (``W_crosses_one``) and that in words (``rho_W_words``), beside rho(P) at the start
    (``rho_P_start``)."""
    epochs, ev = excursion.recurrent_spectra(h_closed)
    rho = np.abs(ev[:, 0])
    rho_open = np.abs(excursion.recurrent_spectra(h_open)[1][:, 0])
    at_stab = (math.nan if stages.stabilization is None
               else float(rho[record_index(epochs, stages.stabilization)]))
    top = float(max(rho.max(), rho_open.max()))
    words = (f"stays below 1 throughout (at most {_b(top, '.2f')} in either)" if top < 1 else
             f"does not stay below 1 (it reaches {_b(top, '.2f')})")
    return {"rho_W_start": float(rho[0]), "rho_W_at_stabilization": at_stab,
            "rho_W_final_closed": float(rho[-1]), "rho_W_final_open": float(rho_open[-1]),
            "rho_W_max": top, "W_crosses_one": top >= 1, "rho_W_words": Words(words),
            "rho_P_start": float(h_closed.spectral_radius[0])}


def cause(pairs, seed: int, plateau) -> dict:
    """Section "What causes the excursion": the ablation at ``seed`` (its table, which settings
    keep the excursion, each setting's numbers), the order in which the reference networks
    learn z.m and z.W m, and the student on the other inputs against the authors' setup.

    ``plateau`` is the teacher's (first, last) plateau epoch or None (then its z.m at the
    plateau's end is not glued, and the phrase says there is no plateau).
    """
    table = pairs.table()
    h_closed = pairs.closed[(pairs.reference, seed)]
    h_open = pairs.open[(pairs.reference, seed)]
    return (_ablation(pairs, table) | _per_setting(pairs, table, seed)
            | _order(h_closed, h_open, plateau) | _other_inputs(table))


def _ablation(pairs, table) -> dict:
    """{setting label: peak / final}, the Markdown table, and the settings (after the
    reference) whose student keeps / loses the excursion, in words."""
    return {"ablation_peak_ratios": {r["setting"]: r["ratio"] for r in table},
            "ablation_table": Words(pairs.markdown()),
            "ablation_keeps": _settings_in_words([r for r in table[1:] if r["shows"]]),
            "ablation_removes": _settings_in_words([r for r in table[1:] if not r["shows"]])}


def _settings_in_words(rows) -> Words:
    """The rows' setting labels in italics, comma-separated ("none of them" if no row)."""
    return Words(", ".join(f"*{r['setting']}*" for r in rows) or "none of them")


def _per_setting(pairs, table, seed) -> dict:
    """Per setting key k: ``ablation_{k}_`` peak / final (``ratio``) and / start
    (``over_start``), ``peak_epoch`` (None without a rise), recorded epochs with unstable
    oscillatory gains (``oscillatory``), % of updates clipped (``clipped``), the student's
    test loss at epoch 0 (``start``), its teacher's final test loss (``teacher_final``) and
    % of its final z.W m learned at half its final z.m (``lag_at_half``)."""
    out = {}
    for r in table:
        k = r["key"]
        out |= {f"ablation_{k}_ratio": r["ratio"], f"ablation_{k}_over_start": r["over_start"],
                f"ablation_{k}_peak_epoch": r["peak_epoch"],
                f"ablation_{k}_oscillatory": r["oscillatory_epochs"],
                f"ablation_{k}_clipped": 100 * r["clipped"],
                f"ablation_{k}_start": float(pairs.open[(k, seed)].test_loss[0]),
                f"ablation_{k}_teacher_final": r["teacher_final"],
                f"ablation_{k}_lag_at_half": 100 * r["lag_at_half"]}
    return out


def _order(h_closed, h_open, plateau) -> dict:
    """The teacher's % of its final z.W m at half its final z.m; both networks' z.m at the
    end of the teacher's plateau (if any) and ``zm_at_plateau_end_words``, the phrase the prose
    reads (it says when there is no plateau); the teacher's final z.m."""
    out = {"closed_lag_at_half": 100 * excursion.lag_at_half(h_closed)}
    if plateau is None:
        words = "this run has no plateau at whose end to compare the two"
    else:
        zm = {name: float(h.instant_gain[record_index(h.monitor_epoch, plateau[1])])
              for name, h in (("closed", h_closed), ("open", h_open))}
        out |= {f"{name}_zm_at_plateau_end": v for name, v in zm.items()}
        words = (f"at the end of its plateau (epoch {_b(plateau[1])}) its $z\\cdot m$ is "
                 f"{_b(zm['closed'], '.2g')}, the student's at that epoch {_b(zm['open'], '.2g')}")
    return out | {"zm_at_plateau_end_words": Words(words),
                  "final_zm_closed": float(h_closed.instant_gain[-1])}


def _other_inputs(table) -> dict:
    """The student's peak test loss on the other inputs against the authors' setup: the
    factor between the two (>= 1; NaN when a student never rises), the phrase the prose reads
    ("3.3 times lower", "1.6 times higher", or why there is no factor) and the label."""
    by_key = {r["key"]: r for r in table}
    paper, other = (by_key[k]["ratio"] * by_key[k]["final"] for k in ("paper", "inputs"))
    factor = max(paper, other) / min(paper, other)
    if math.isnan(factor):
        words = "not comparable (a student that never rises has no peak)"
    else:
        words = f"{_b(factor, '.3g')} times {'lower' if other < paper else 'higher'}"
    return {"ablation_inputs_peak_factor": factor,
            "ablation_inputs_label": Words(by_key["inputs"]["setting"]),
            "ablation_inputs_peak_words": Words(words)}

