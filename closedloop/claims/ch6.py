"""Chapter 6's claims: one function a section, each returning ``{glue name: value}``.

Section "The linear open-loop student" (issue 28; glue names ``lin_*``): a rank-one linear
teacher trained closed loop and its open-loop student (``open_student.train_students``).
Epochs are rows of the student's history (row e: the network before update e; rows 0 and 1
are the same network, since epoch 0 makes no update); losses are exact expected closed-loop
losses in the teacher's units (``PAPER_RANK_ONE``); rho is rho(P_eff); an epoch is unstable
when rho >= 1; p = s_zu s_vm. The functions take the ``LinearStudents`` and, for one run,
its seed.
"""

from __future__ import annotations

import math

import numpy as np

from .. import excursion, open_student
from ..stages import detect_stages
from . import Words, listed
from . import bold as _b


def linear_student_setup(students) -> dict:
    """What was run: seeds, stream, epochs (updates), T, lr, batch, clipping, the student's
    convention, whether it trained compressed, and the wall time of it all (s)."""
    c = students.student.config
    return {"lin_seeds": Words(", ".join(map(str, students.seeds))),
            "lin_n_seeds": len(students.seeds), "lin_stream": Words(students.stream),
            "lin_epochs": c["epochs"], "lin_T": students.T, "lin_lr": c["lr"],
            "lin_batch": c["batch"], "lin_clip": c["clip"],
            "lin_convention": Words(c["convention"]), "lin_compressed": students.compressed,
            "lin_seconds": students.seconds}


def linear_student_peak(students, seed: int) -> dict:
    """The peak of the student's closed-loop loss (``excursion.find_excursion``: the highest
    value after it had been lower): epoch, value, over its final value, over the teacher's
    final, over its start and over the lowest value before it (``rise``); whether it rises
    above its start (``shows``), and the kind of the largest eigenvalue there."""
    k = students.index(seed)
    h = students.student
    loss = h.closed_loss[:, k]
    ex = excursion.find_excursion(h.epoch, loss)
    teacher_final = float(students.teacher.expected_loss[-1, k])
    if ex.peak_epoch is None:
        return {"lin_peak_epoch": None, "lin_peak_loss": math.nan, "lin_peak_ratio": math.nan,
                "lin_peak_over_teacher": math.nan, "lin_peak_over_start": math.nan,
                "lin_peak_rise": math.nan, "lin_peak_shows": False,
                "lin_final_loss": ex.final_loss, "lin_teacher_final_loss": teacher_final,
                "lin_peak_words": Words(f"never rises: it ends at {_b(ex.final_loss, '.3g')}")}
    i = ex.peak_epoch
    rise = ex.peak_loss / float(loss[:i].min())
    kind = _kind(h.eig_P[i, k, 0])
    words = (f"peaks at epoch {_b(i)} at {_b(ex.peak_loss, '.3g')}, {_b(rise, '.3g')} times "
             f"the lowest value before it and {_b(ex.ratio, '.3g')} times its final "
             f"{_b(ex.final_loss, '.3g')}")
    return {"lin_peak_epoch": i, "lin_peak_loss": ex.peak_loss, "lin_peak_ratio": ex.ratio,
            "lin_peak_over_teacher": ex.peak_loss / teacher_final,
            "lin_peak_over_start": ex.over_start, "lin_peak_rise": rise,
            "lin_peak_shows": ex.shows, "lin_peak_kind": Words(kind),
            "lin_final_loss": ex.final_loss, "lin_teacher_final_loss": teacher_final,
            "lin_peak_words": Words(words)}


def linear_student_instability(students, seed: int) -> dict:
    """How long the student's loop is unstable: recorded epochs with rho >= 1 (``count``),
    the first and last (-1: none), the epoch from which it stays stable, its spells
    (``open_student.unstable_spells``) in words, its largest rho after epoch 0 and where,
    whether that exceeds its start (``rho_rises``: the loop grows more unstable than the
    untrained one) and whether it turns unstable after a stable epoch (``destabilized``);
    the teacher's count, stabilization epoch (None: never) and largest rho from the end of
    its stage 1 on (its last row if stage 1 never ended)."""
    k = students.index(seed)
    h, t = students.student, students.teacher
    stages = detect_stages(t.member(k))
    s1 = stages.stage1_end if stages.stage1_end is not None else len(t.epoch) - 1
    flag = h.spectral_radius[:, k] >= 1
    unstable = h.eig_epoch[flag]
    spells = open_student.unstable_spells(h.eig_epoch, h.eig_P[:, k])
    rho = h.spectral_radius[1:, k]
    words = "; ".join(f"epochs {_b(s.first)}-{_b(s.last)} ({s.kind}, rho up to "
                      f"{_b(s.max_rho, '.3f')})" for s in spells) or "none"
    first = int(unstable.min()) if unstable.size else -1
    last = int(unstable.max()) if unstable.size else -1
    was_stable = np.logical_or.accumulate(~flag)
    return {"lin_unstable_epochs": int(flag.sum()), "lin_first_unstable": first,
            "lin_last_unstable": last, "lin_stable_from": min(last + 1, int(h.epoch[-1])),
            "lin_n_spells": len(spells), "lin_spells_words": Words(words),
            "lin_max_rho": float(rho.max()),
            "lin_max_rho_epoch": int(h.eig_epoch[1:][rho.argmax()]),
            "lin_start_rho": float(h.spectral_radius[0, k]),
            "lin_rho_rises": bool(rho.max() > h.spectral_radius[0, k]),
            "lin_destabilized": bool((flag[1:] & was_stable[:-1]).any()),
            "lin_teacher_unstable_epochs": int((t.spectral_radius[:, k] >= 1).sum()),
            "lin_teacher_stabilization": stages.stabilization,
            "lin_teacher_max_rho_stage2": float(t.spectral_radius[s1:, k].max())}


def linear_student_mechanism(students, seed: int) -> dict:
    """Why, in closed form. The order of learning: the epochs at which s_zm and p are half
    way from their start to their end (``open_student.half_way``) and p's share of its way
    when s_zm is half way. At the peak: s_zm, p, s_vu, the p the pair needs to be inside
    (``required_product``), the pair's modulus with p = 0 (sqrt(1 + |s_zm|)), to first order
    in p and exactly (rho). Over the run: the share of unstable epochs with a complex leading
    eigenvalue at which p < p_c, and with a real one at which the static gain K(1) > 0
    (NaN if none); the teacher's final K(1) and its two parts, s_zm and p / (1 - s_vu)."""
    k = students.index(seed)
    h = students.student
    q = h.overlaps[:, k]
    p = q[:, 1] * q[:, 2]
    zm_half, p_half = open_student.half_way(q[:, 0]), open_student.half_way(p)
    out = {"lin_zm_half_epoch": int(h.epoch[zm_half]), "lin_p_half_epoch": int(h.epoch[p_half]),
           "lin_p_share_at_zm_half": float((p[zm_half] - p[0]) / (p[-1] - p[0]))}
    ex = excursion.find_excursion(h.epoch, h.closed_loss[:, k])
    if ex.peak_epoch is not None:
        i = ex.peak_epoch
        out |= {"lin_peak_s_zm": float(q[i, 0]), "lin_peak_p": float(p[i]),
                "lin_peak_s_vu": float(q[i, 3]),
                "lin_peak_p_needed": float(open_student.required_product(q[i])),
                "lin_peak_modulus_p0": math.sqrt(1 + abs(q[i, 0])),
                "lin_peak_modulus_first_order": float(np.sqrt(
                    open_student.pair_modulus_sq(q[i]))),
                "lin_peak_rho": float(h.spectral_radius[i, k])}
    lead = h.eig_P[:, k, 0]
    unstable = h.unstable[:, k]
    osc, real = unstable & (lead.imag != 0), unstable & (lead.imag == 0)
    p_c = open_student.required_product(q)
    gain = open_student.dc_gain(q)
    qt = students.teacher.overlaps[-1, k]
    return out | {"lin_osc_unstable_epochs": int(osc.sum()),
                  "lin_real_unstable_epochs": int(real.sum()),
                  "lin_osc_explained": float((p[osc] < p_c[osc]).mean()) if osc.any()
                  else math.nan,
                  "lin_real_explained": float((gain[real] > 0).mean()) if real.any()
                  else math.nan,
                  "lin_teacher_dc_gain": float(open_student.dc_gain(qt)),
                  "lin_teacher_s_zm": float(qt[0]),
                  "lin_teacher_tail_sum": float(qt[1] * qt[2] / (1 - qt[3]))}


def linear_student_seeds(students) -> dict:
    """Across all seeds: how many students' losses rise above their start, how many reach a
    larger rho than at their start, turn unstable after a stable epoch, and have a late spell
    with a real root (a spell after the first, kind 'real');
    the range of the peak's ratios (over final, over the lowest before it), of the unstable
    counts, last unstable epochs and largest rho after epoch 0; the teachers' stabilization
    epochs and in how many seeds the student is unstable at or after its teacher's
    stabilization epoch (or the teacher never stabilized); the smallest share of unstable
    epochs explained by the two closed forms."""
    h = students.student
    rows = []
    for seed in students.seeds:
        k = students.index(seed)
        peak, inst = linear_student_peak(students, seed), linear_student_instability(
            students, seed)
        mech = linear_student_mechanism(students, seed)
        spells = open_student.unstable_spells(h.eig_epoch, h.eig_P[:, k])
        rows.append(dict(peak | inst | mech, late_real=any(s.kind == "real"
                                                           for s in spells[1:])))
    col = lambda name: np.array([r[name] for r in rows], dtype=float)
    ratio, rise, count, last, rho = (col(n) for n in ("lin_peak_ratio", "lin_peak_rise",
                                                      "lin_unstable_epochs",
                                                      "lin_last_unstable", "lin_max_rho"))
    explained = np.concatenate([col("lin_osc_explained"), col("lin_real_explained")])
    stab = [r["lin_teacher_stabilization"] for r in rows]
    return {"lin_seeds_rising_above_start": sum(r["lin_peak_shows"] for r in rows),
            "lin_seeds_with_peak": int(np.isfinite(ratio).sum()),
            "lin_seeds_rho_rises": sum(r["lin_rho_rises"] for r in rows),
            "lin_seeds_destabilized": sum(r["lin_destabilized"] for r in rows),
            "lin_seeds_late_real": sum(r["late_real"] for r in rows),
            "lin_seeds_longer_than_teacher": sum(
                r["lin_teacher_stabilization"] is None
                or r["lin_last_unstable"] >= r["lin_teacher_stabilization"] for r in rows),
            "lin_ratio_min": _min(ratio), "lin_ratio_median": _median(ratio),
            "lin_ratio_max": _max(ratio), "lin_rise_min": _min(rise),
            "lin_rise_median": _median(rise), "lin_rise_max": _max(rise),
            "lin_unstable_min": int(count.min()), "lin_unstable_max": int(count.max()),
            "lin_last_unstable_min": int(last.min()), "lin_last_unstable_max": int(last.max()),
            "lin_max_rho_min": float(rho.min()), "lin_max_rho_max": float(rho.max()),
            "lin_teacher_stabilizations": listed(stab),
            "lin_explained_min": _min(explained)}


def _kind(ev) -> str:
    """The kind of a leading eigenvalue, for the prose: complex or real."""
    return "oscillatory (a complex pair)" if ev.imag != 0 else "real"


def _min(a) -> float:
    a = a[np.isfinite(a)]
    return float(a.min()) if a.size else math.nan


def _max(a) -> float:
    a = a[np.isfinite(a)]
    return float(a.max()) if a.size else math.nan


def _median(a) -> float:
    a = a[np.isfinite(a)]
    return float(np.median(a)) if a.size else math.nan


# -- sections "The closed loop of any plant" to "An atlas" (the plants; glue names by plant) --
#: the chapter's plants, their glue prefixes
PLANT_KEYS = {"double integrator": "di", "triple integrator": "tri",
              "damped oscillator": "osc", "unstable plant": "unst"}


def coupled_identity(runs) -> dict:
    """Section "The closed loop of any plant": for each run's final network (``plant_stages.
    train_plants``) the n + 1 roots of q against the nonzero eigenvalues of the full P
    (n + N square): ``identity_max_error``, the largest distance between the two sorted lists
    over the plants; ``identity_degrees`` (Words), n + 1 per plant."""
    import torch

    from .. import plant_theory as pt

    errors, degrees = [], []
    for name, run in runs.items():
        with torch.no_grad():
            eig = torch.linalg.eigvals(pt.coupled_matrix(run.agent, run.plant)).numpy()
            roots = pt.roots(run.agent.overlaps(), run.plant)
        n1 = run.plant.n_state + 1
        big = eig[np.argsort(-np.abs(eig))][:n1]
        errors.append(float(np.abs(np.sort_complex(big) - np.sort_complex(roots)).max()))
        degrees.append(f"{n1} ({name})")
    return {"identity_max_error": max(errors), "identity_degrees": Words(", ".join(degrees))}


def plant_run(run, key: str, verdict) -> dict:
    """Section "Four plants, one network": the numbers of one run (``plant_stages.PlantRun``)
    under ``{key}_...``, beside the theory (``verdict``: ``stage_theory.allowed_stages``).

    ``s_zm0`` and ``s_zm_final``; ``sign`` (Words) that stage 1 prefers; ``stage1_end`` and
    ``stab`` (Words: "epoch **e**" or "never"; ``stab_epoch`` the number, None: never); ``rho0``,
    ``rho_min``, ``rho_final`` of P; ``loss0``, ``loss_final`` (exact expected loss);
    ``unstable_epochs`` (records with rho >= 1); ``static_at_stab`` (rho(A + s_zm B C) at
    stabilization, NaN: never); ``gap_stage1`` (largest distance of eig(A + s_zm B C) to
    eig(P) over the first 10 records, where u, v are still small) and ``gap_final`` (at the
    end); ``predicted`` (Words: ``clip_speed_epoch`` into the static interval nearest 0, or
    "none: static feedback cannot stabilize") and ``stab_over_predicted`` (NaN where either
    is missing); the LQR (``verdict.lqr``) loop's episode loss in the chapter's units
    (``lqr_loss``), ``loss_over_lqr``, the network's effective gains ``gains`` and the
    LQR's -K ``lqr_gains`` (Words); ``theory`` (Words, ``verdict.words()``)."""
    from .. import plant_stages as ps

    h, st, plant = run.history, run.stages, run.plant
    rho = np.asarray(h.spectral_radius)
    gap = ps.stage1_gap(h, plant)
    ivs = verdict.static.intervals
    interval = (min(ivs, key=lambda iv: 0 if iv[0] <= 0 <= iv[1]
                    else min(abs(iv[0]), abs(iv[1]))) if ivs else None)
    s0 = float(h.overlaps[0, 0])
    pred = float(ps.clip_speed_epoch(s0, run.m_norm, run.lr, interval))
    lqr_loss = ps.feedback_loss(plant, verdict.lqr.gain, run.T)
    gains = ps.effective_gains(h.overlaps[-1], plant, run.T)
    stab = st.stabilization
    out = {"s_zm0": s0, "sign": Words("negative" if st.sign < 0 else "positive"),
           "stage1_end": _epoch_words(st.stage1_end), "stab": _epoch_words(stab),
           "stab_epoch": stab, "rho0": float(rho[0]), "rho_min": float(rho.min()),
           "rho_final": float(rho[-1]), "loss0": float(h.expected_loss[0]),
           "loss_final": float(h.expected_loss[-1]),
           "unstable_epochs": int((rho >= 1).sum()),
           "static_at_stab": st.static_rho_at_stabilization,
           "gap_stage1": float(gap[:10].max()), "gap_final": float(gap[-1]),
           "s_zm_final": float(h.overlaps[-1, 0]),
           "predicted": Words(f"epoch **{int(pred)}**" if math.isfinite(pred) else
                              "none: static feedback cannot stabilize"),
           "stab_over_predicted": (stab / pred if stab is not None and math.isfinite(pred)
                                   and pred > 0 else math.nan),
           "lqr_loss": lqr_loss, "loss_over_lqr": float(h.expected_loss[-1]) / lqr_loss,
           "gains": _vector(gains), "lqr_gains": _vector(-verdict.lqr.gain),
           "theory": Words(verdict.words())}
    return {f"{key}_{k}": v for k, v in out.items()}


def plant_runs(runs, verdicts) -> dict:
    """``plant_run`` of every run ({name: PlantRun}) with its verdict ({name: AllowedStages}),
    under the prefixes of ``PLANT_KEYS``."""
    out = {}
    for name, run in runs.items():
        out |= plant_run(run, PLANT_KEYS[name], verdicts[name])
    return out


def breaks(runs, verdicts) -> dict:
    """Section "Where the picture breaks", from the runs ({name: PlantRun}) and verdicts
    ({name: AllowedStages}): the triple integrator's powers of mu with a structurally zero
    coefficient (``tri_zero_powers``, Words), its best first-order radius (``tri_reach_rho``)
    and, over the second half of training (records from the middle on), the range of its
    loss (``tri_late_loss_lo``, ``_hi``) and of rho(P) (``tri_late_rho_lo``, ``_hi``):
    clipped SGD bouncing on a loop it cannot stabilize; the unstable plant's
    static interval (``unst_static_lo``, ``_hi``); the oscillator's rho(A)
    (``osc_open_rho``); the double integrator's best static radius (``di_best_static``) and
    first-order reach (``di_reach_rho``); ``stage1_gap_max``, the largest of the plants'
    stage-1 gaps over their first 10 records (``plant_stages.stage1_gap``)."""
    from .. import plant_stages as ps

    tri, unst = runs["triple integrator"], runs["unstable plant"]
    zeros = ps.structural_zeros(tri.plant)
    loss = np.asarray(tri.history.expected_loss)
    late = loss[len(loss) // 2:]
    rho = np.asarray(tri.history.spectral_radius)
    rho_late = rho[len(rho) // 2:]
    lo, hi = verdicts["unstable plant"].static.intervals[0]
    gaps = [float(ps.stage1_gap(r.history, r.plant)[:10].max()) for r in runs.values()]
    return {"stage1_gap_max": max(gaps),
            "tri_zero_powers": Words(", ".join(f"$\\mu^{j}$" for j in zeros) or "none"),
            "tri_n_zero_powers": len(zeros),
            "tri_reach_rho": verdicts["triple integrator"].reach.rho,
            "tri_late_loss_lo": float(late.min()), "tri_late_loss_hi": float(late.max()),
            "tri_late_rho_lo": float(rho_late.min()), "tri_late_rho_hi": float(rho_late.max()),
            "unst_static_lo": lo, "unst_static_hi": hi,
            "unst_a": float(unst.plant.A[0, 0]),
            "osc_open_rho": verdicts["damped oscillator"].open_rho,
            "di_best_static": verdicts["double integrator"].static.best_rho,
            "di_reach_rho": verdicts["double integrator"].reach.rho}


def atlas(table) -> dict:
    """Section "An atlas": from ``plant_stages.atlas_table`` over the unstable plant's pole a.
    ``atlas_n`` runs, ``atlas_n_values`` values of a, ``atlas_epochs``; ``atlas_frac_stab``
    and ``atlas_frac_pred`` (fraction of runs stabilized, and predicted to by the clip speed
    within the epochs run); ``atlas_agree`` (fraction of runs where the two agree),
    ``atlas_early`` (stabilized although not predicted to) and ``atlas_late`` (predicted,
    not stabilized);
    ``atlas_ratio_median``, ``_lo``, ``_hi`` (measured / predicted stabilization epoch over
    runs with both, median, 5th and 95th percentile; NaN if none); ``atlas_static_max``
    (largest rho(A + s_zm B C) at stabilization: how far from stable the static part was);
    the value of the parameter where measured and predicted fractions differ most
    (``_worst_value``)."""
    stab, pred = table["stabilization"], table["predicted"]
    reached, predicted = np.isfinite(stab), pred <= table["epochs"]
    both = reached & np.isfinite(pred) & (pred > 0)
    ratio = stab[both] / pred[both]
    q = np.percentile(ratio, [50, 5, 95]) if ratio.size else [math.nan] * 3
    return {"atlas_n": int(stab.size), "atlas_n_values": int(np.unique(table["value"]).size),
            "atlas_epochs": table["epochs"], "atlas_frac_stab": float(reached.mean()),
            "atlas_frac_pred": float(predicted.mean()),
            "atlas_agree": float((reached == predicted).mean()),
            "atlas_early": float((reached & ~predicted).mean()),
            "atlas_late": float((~reached & predicted).mean()),
            "atlas_ratio_median": float(q[0]), "atlas_ratio_lo": float(q[1]),
            "atlas_ratio_hi": float(q[2]),
            "atlas_static_max": float(np.nanmax(table["static_at_stab"]))
            if reached.any() else math.nan, **_worst_value(table, reached, predicted)}


def _worst_value(table, reached, predicted) -> dict:
    """The parameter value at which the measured and predicted fractions stabilized differ
    most (the first such in sorted order): ``atlas_worst_value``, ``atlas_worst_stab``,
    ``atlas_worst_pred``."""
    values = np.unique(table["value"])
    frac = lambda flags: np.array([flags[table["value"] == v].mean() for v in values])  # noqa: E731
    stab, pred = frac(reached), frac(predicted)
    i = int(np.argmax(np.abs(stab - pred)))
    return {"atlas_worst_value": float(values[i]), "atlas_worst_stab": float(stab[i]),
            "atlas_worst_pred": float(pred[i])}


def _epoch_words(epoch) -> Words:
    return Words("never" if epoch is None else f"epoch **{epoch}**")


def _vector(v) -> Words:
    return Words("(" + ", ".join(f"**{x:.2f}**" for x in np.asarray(v, float)) + ")")
