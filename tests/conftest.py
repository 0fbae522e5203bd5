import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from closedloop import DoubleIntegrator


@pytest.fixture
def env():
    return DoubleIntegrator()


def match(a, b):
    """Max distance between two multisets of complex numbers after optimal pairing."""
    a, b = np.asarray(a).ravel(), np.asarray(b).ravel()
    assert a.shape == b.shape
    cost = np.abs(a[:, None] - b[None, :])
    r, c = linear_sum_assignment(cost)
    return cost[r, c].max()
