"""The settings of each chapter's ``parameters`` cell: their types and allowed ranges.

Every chapter calls ``check_parameters`` in the cell right after its parameters cell (and so
after any cell papermill injects), so that a bad setting stops the chapter there, naming the
parameter, its value and the allowed range, before anything trains. The ranges are what the
chapter's code needs, which can be narrower than what the package accepts (Chapter 2 needs
N >= 2 for its rank-one networks; Chapter 4's 0.4 Hz reference needs dt below 1.25 s).
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Mapping
from dataclasses import dataclass

from . import _checks
from .conventions import TRACKING_NAMED
from .tracking import Sinusoids
from .streams import KINDS
from .training import INPUTS


@dataclass(frozen=True)
class Param:
    """One setting: ``kind`` int, float or str; [low, high] (open ends if ``*_open``);
    ``choices`` for strings, and ``pattern``: a regular expression a string outside the
    choices may match instead (e.g. a scheduler address); ``none_ok``: None is allowed too;
    ``odd``: odd integers only; ``item``: for ``kind`` list, the Param every element must
    satisfy (a non-empty list)."""

    kind: type
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple | None = None
    none_ok: bool = False
    odd: bool = False
    item: "Param | None" = None
    pattern: str | None = None

    def check(self, name: str, value):
        if value is None and self.none_ok:
            return None
        if self.kind is list:
            if not isinstance(value, (list, tuple)) or not value:
                raise TypeError(f"{name} must be a non-empty list, got {_checks.short(value)}")
            return [self.item.check(f"{name}[{i}]", v) for i, v in enumerate(value)]
        if self.kind is int:
            value = _checks.integer(name, value, low=self.low, high=self.high)
            if self.odd and value % 2 == 0:
                raise ValueError(f"{name} must be odd, got {value}")
            return value
        if self.kind is float:
            return _checks.real(name, value, low=self.low, high=self.high,
                                low_open=self.low_open, high_open=self.high_open)
        if (self.pattern is not None and isinstance(value, str)
                and re.fullmatch(self.pattern, value)):
            return value
        try:
            return _checks.choice(name, value, self.choices)
        except ValueError:
            if self.pattern is None:
                raise
            raise ValueError(f"{name} must be one of {sorted(self.choices)} or match "
                             f"{self.pattern!r}, got {_checks.short(value)}") from None


SEED = Param(int, 0, 2**63 - 1)
POSITIVE = Param(float, 0.0, low_open=True)
COUNT = Param(int, 1)
CLIP = Param(float, 0.0, low_open=True, none_ok=True)  # None: no clipping
STREAM = Param(str, choices=KINDS)  # what a seed draws: the authors' draws or the package's
DTYPE = Param(str, choices=("float32", "float64"))

# Chapter 4 keeps the default references: every frequency must lie below Nyquist, 1/(2 dt)
_FREQS = inspect.signature(Sinusoids).parameters["freqs"].default
MAX_DT = 1 / (2 * max(_FREQS))

CHAPTERS: dict[str, dict[str, Param]] = {
    "ch1_open_closed": {
        "epochs": COUNT, "batch": COUNT, "T": COUNT, "lr": POSITIVE, "clip": CLIP,
        "N": COUNT, "g": Param(float, 0.0), "beta": Param(float, 0.0),
        "x0_half_width": Param(float, 1e-150, 1e150),
        "inputs": Param(str, choices=INPUTS),
        "n_test": Param(int, 2),  # the gains are regressed on >= 2 independent starts
        "seed": SEED, "n_seeds": COUNT, "snapshot_every": COUNT, "n_grid": Param(int, 2),
        "workers": COUNT, "stream": STREAM, "dtype": DTYPE,
    },
    "ch2_stages": {
        "epochs": COUNT, "batch": COUNT, "T": COUNT, "lr": POSITIVE, "clip": CLIP,
        "N": Param(int, 2),  # z gets a part orthogonal to m
        "x0_half_width": Param(float, 1e-150, 1e150), "seed": SEED, "stream": STREAM,
        "n_seeds": COUNT, "n_spread": COUNT, "n_sweep": COUNT,
        "s_zm0_max": Param(float, 0.0, 1.0, low_open=True),  # |s_zm(0)| <= 1
        "n_grid": Param(int, 2), "n_batches": Param(int, 2),  # a spread needs two batches
    },
    "ch3_tradeoff": {
        "epochs": COUNT, "batch": COUNT, "T": COUNT, "lr": POSITIVE, "clip": CLIP,
        "N": Param(int, 4),  # RankOneAgent.compressed() spans m, u, v, z: four neurons
        "x0_half_width": Param(float, 1e-150, 1e150), "seed": SEED, "stream": STREAM,
        "stage2_offset": Param(int, 0),
        "alpha_values": Param(list, item=Param(float, 0.0, 1.0)),  # weights of L_inf
        "T_prime": COUNT, "alpha_lr": POSITIVE, "alpha_steps": COUNT,
        "fig4d_alphas": Param(list, item=Param(float, 0.0, 1.0)), "fig4d_T_prime": COUNT,
        "band_T_primes": Param(list, item=COUNT), "band_tol": POSITIVE,
        "T_values": Param(list, item=COUNT), "T_sweep_epochs": COUNT, "T_scan_max": COUNT,
        "betas": Param(list, item=Param(float, 0.0)), "n_seeds": COUNT,
    },
    "ch4_tracking": {
        "epochs": COUNT, "batch": COUNT, "lr": POSITIVE, "N": COUNT, "g": Param(float, 0.0),
        "tau": POSITIVE, "dt": Param(float, 0.0, MAX_DT, low_open=True, high_open=True),
        "T": COUNT, "bound": Param(float, 0.0, low_open=True, none_ok=True), "seed": SEED,
        "stream": STREAM, "convention": Param(str, choices=tuple(TRACKING_NAMED)),
        "acq_fraction": Param(float, 0.0, 1.0, low_open=True),
        "acq_window": Param(int, 1, odd=True), "n_seeds": Param(int, 0),
        "n_batches": Param(int, 2), "dtype": DTYPE,
    },
    "ch5_atlas": {
        "engine": Param(str, choices=("local", "inprocess"), pattern=r"tcp://[^\s/]+:\d+"),
        "n_workers": COUNT, "chunk_size": COUNT, "epochs": COUNT, "batch": COUNT,
        "out": Param(str, choices=(), pattern=r".+", none_ok=True),  # a folder, or None
        "N": Param(int, 1), "T_values": Param(list, item=COUNT),
        "lr_values": Param(list, item=Param(float, 0.0, low_open=True)), "n_seeds": COUNT,
        "N_values": Param(list, item=COUNT),
        "s_zm0_values": Param(list, item=Param(float, -1.0, 1.0)), "n_seeds_N": COUNT,
        "excursion_N": COUNT, "excursion_epochs": COUNT,
        "excursion_lrs": Param(list, item=Param(float, 0.0, low_open=True)),
        "excursion_inits": Param(list, item=Param(str, choices=("paper", "gaussian"))),
        "excursion_seeds": COUNT, "excursion_dtype": DTYPE,
    },
    "ch6_plants": {
        "epochs": COUNT, "batch": COUNT, "T": COUNT, "lr": POSITIVE, "clip": CLIP,
        "N": Param(int, 2),  # z gets a part orthogonal to m
        "x0_half_width": Param(float, 1e-150, 1e150), "seed": SEED, "stream": STREAM,
        "osc_omega": POSITIVE, "osc_zeta": Param(float, 0.0, 1.0, high_open=True),
        "osc_dt": POSITIVE,
        "a": Param(float, -1e6, 1e6),  # an unstable pole, |a| > 1 (RELATIONS)
        "student_seeds": Param(list, item=SEED),
        # |a| > 1 (unstable); the atlas covers both signs
        "atlas_values": Param(list, item=Param(float, -1e6, 1e6)),
        "atlas_seeds": COUNT, "atlas_epochs": COUNT,
        "engine": Param(str, choices=("local", "inprocess"), pattern=r"tcp://[^\s/]+:\d+"),
        "n_workers": COUNT,
    },
    "report": {"executed": Param(str, choices=(), pattern=r".+")},  # a folder
}


# constraints between a chapter's parameters: (test, the message when it fails)
RELATIONS = {
    "ch6_plants": [(lambda v: abs(v["a"]) > 1,
                    "a must be an unstable pole, |a| > 1, got a={a}"),
                   (lambda v: all(abs(x) > 1 for x in v["atlas_values"]),
                    "atlas_values must be unstable poles, |a| > 1, got {atlas_values}"),
                   (lambda v: len(set(v["atlas_values"])) == len(v["atlas_values"]),
                    "atlas_values must be distinct, got {atlas_values}")],
    "ch4_tracking": [(lambda v: v["dt"] <= v["tau"],
                      "dt must be <= tau (alpha = dt/tau <= 1: an Euler step no longer than the "
                      "time constant), got dt={dt} and tau={tau}")],
}


def check_parameters(chapter: str, values: Mapping) -> None:
    """Check a chapter's settings: ``values`` maps names to values (a notebook passes
    ``globals()``; names the chapter does not declare are ignored). Raises TypeError or
    ValueError naming the parameter, its value and the allowed range.
    Introduced with the reliability checks (issue 8).
    """
    name = chapter.removesuffix(".ipynb") if isinstance(chapter, str) else chapter
    if name not in CHAPTERS:
        raise ValueError(f"chapter must be one of {sorted(CHAPTERS)}, got {chapter!r}")
    if not isinstance(values, Mapping):
        raise TypeError(f"values must be a mapping of parameter names to values, got "
                        f"{_checks.short(values)}")
    for key, spec in CHAPTERS[name].items():
        if key not in values:
            raise ValueError(f"{name}: parameter {key} is missing")
        try:
            spec.check(key, values[key])
        except (TypeError, ValueError) as e:
            raise type(e)(f"{name}: parameter {e}") from None
    for holds, message in RELATIONS.get(name, []):
        if not holds(values):
            raise ValueError(f"{name}: parameter {message.format(**values)}")
