"""The plant as settings of a sweep's point (``sweep``'s ``rank_one`` and ``tanh`` models).

The setting ``plant`` names a family of ``plants.FAMILIES`` ('double_integrator', the
default, 'integrator', 'damped_oscillator', 'unstable') whose parameters are the settings
``order`` (the integrator chain's length), ``omega`` (rad per time unit), ``zeta``, ``dt``
(time units per step), ``a`` (None where the family does not take them), with ``noise`` the
process noise sigma (state units per step, 0 by default) and the model's ``x0_half_width``
the box of initial states on every axis. Or ``plant`` holds a ``plants.LinearPlant``, kept in
the point as its ``spec()`` (plain numbers: the point stays JSON, hashes faithfully and
travels to any worker); its x0 box and noise must then agree with the point's
``x0_half_width`` and ``noise`` (one plant, never two half-read). E.g.
``sweep.run({"plant": ["damped_oscillator"], "omega": [0.5], "dt": [1.0], "zeta": zetas,
"seed": range(10)})``. All plant settings are shared by a chunk's members (an ensemble trains
in one environment), so a grid over zeta is at least one chunk per value. Introduced in
Chapter 6.
"""

from __future__ import annotations

from collections.abc import Mapping

from . import _checks

#: The plant settings and their defaults (the paper's noise-free double integrator).
DEFAULTS = dict(plant="double_integrator", order=None, omega=None, zeta=None, dt=None, a=None,
                noise=0.0)


def check_name(name, value):
    """The ``plant`` setting: a family name, or a LinearPlant (or its ``spec()``) as its
    spec, checked (shapes, finite entries)."""
    from .plants import FAMILIES, LinearPlant

    if isinstance(value, LinearPlant):
        return value.spec()
    if isinstance(value, Mapping):
        return LinearPlant.from_spec(dict(value)).spec()
    return _checks.choice(name, value, tuple(FAMILIES))


def number(low=None, high=None, integer=False, none_ok=True):
    """A check (name, value) -> value of a number in [low, high] (an integer if ``integer``;
    None passes if ``none_ok``): the settings' checks here and in ``sweep``."""
    def check(name, value):
        if value is None and none_ok:
            return None
        if integer:
            return _checks.integer(name, value, low=low, high=high)
        return _checks.real(name, value, low=low, high=high)
    return check


#: Each plant setting's own check (the family's parameters are checked together, below).
CHECKS = {"plant": check_name, "order": number(1, 50, integer=True), "omega": number(0.0),
          "zeta": number(0.0, 1.0), "dt": number(0.0), "a": number(),
          "noise": lambda name, v: _checks.real(name, v, low=0.0)}


def check_point(point: dict) -> dict:
    """The plant settings together: a family with its parameters (the others None), or a
    LinearPlant's spec that agrees with ``x0_half_width`` and ``noise``. The plant is built
    once, so a bad one (a missing parameter, a non-minimal oscillator) fails before anything
    trains. Returns the point."""
    from .plants import FAMILY_PARAMETERS

    if isinstance(point["plant"], dict):
        spec, w = point["plant"], point["x0_half_width"]
        given = [k for k in FAMILY_PARAMETERS if point[k] is not None]
        if given:
            raise ValueError(f"plant is a LinearPlant: the family parameters {given} do not "
                             f"apply")
        if any(h != w for h in spec["x0"]) or spec["noise"] != point["noise"]:
            raise ValueError(f"plant is a LinearPlant with x0 half-widths {spec['x0']} and "
                             f"noise={spec['noise']}, the point has x0_half_width={w} and "
                             f"noise={point['noise']}: set them to agree")
    env_of(point)
    return point


def env_of(point: dict):
    """The environment of a point: the double integrator of ``envs`` (the chapters' own
    object: the numbers it always gave) unless another plant or noise is set."""
    from .envs import DoubleIntegrator, UniformBox
    from .plants import FAMILY_PARAMETERS, LinearPlant, from_family

    if isinstance(point["plant"], dict):
        return LinearPlant.from_spec(point["plant"])
    params = {k: point[k] for k in FAMILY_PARAMETERS}
    if point["plant"] == "double_integrator" and not point["noise"]:
        from_family("double_integrator", **params)  # refuses parameters it does not take
        return DoubleIntegrator(UniformBox(point["x0_half_width"]))
    return from_family(point["plant"], x0=point["x0_half_width"], noise=point["noise"],
                       **params)
