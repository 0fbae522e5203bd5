"""Stage detection (closedloop.stages) on synthetic histories with known boundaries."""

import numpy as np
import pytest

from closedloop import stages


def test_settles():
    e = np.arange(10)
    assert stages.settles(e, [0, 1, 0, 1, 1, 1, 1, 1, 1, 1]) == 3
    assert stages.settles(e, [1] * 10) == 0
    assert stages.settles(e, [1] * 9 + [0]) is None


def test_detect_stages_on_a_synthetic_history():
    from closedloop.training import History
    E = np.arange(100)
    s_zm = np.where(E < 12, 0.05, -0.1)
    s_zm[20] = 0.01  # a late sign flip moves the boundary
    rho = np.where(E < 60, 1.01, 0.8)
    q = np.zeros((100, 4))
    q[:, 0] = s_zm
    h = History({}, {"epoch": E, "eig_epoch": E, "overlaps": q, "spectral_radius": rho})
    s = stages.detect_stages(h)
    assert (s.stage1_end, s.stabilization) == (21, 60)
    assert [sp[0] for sp in s.spans()] == ["stage 1", "stage 2", "stage 3"]


def test_detect_stages_from_effective_gains():
    """A tanh history has no overlaps: the recorded z.m (instant_gain) takes their place."""
    from closedloop.training import History
    E = np.arange(50)
    zm = np.where(E < 9, 0.02, -0.05)
    rho = np.where(E < 30, 1.2, 0.9)
    h = History({}, {"epoch": E, "eig_epoch": E, "monitor_epoch": E, "instant_gain": zm,
                     "spectral_radius": rho})
    s = stages.detect_stages(h)
    assert (s.stage1_end, s.stabilization) == (9, 30)
    with pytest.raises(ValueError, match="overlaps"):
        stages.detect_stages(History({}, {"epoch": E, "eig_epoch": E, "spectral_radius": rho}))
