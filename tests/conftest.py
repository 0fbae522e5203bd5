import collections
import functools

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, settings
from scipy.optimize import linear_sum_assignment

from closedloop import DoubleIntegrator

# Property tests draw from a fixed seed (derandomize): CI sees the same cases every run, so
# it cannot flake; no deadline, since a first call into torch can be slow on a shared machine.
settings.register_profile("closedloop", derandomize=True, database=None, deadline=None,
                          print_blob=True, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("closedloop")

CASES = collections.Counter()  # hypothesis cases run, per test (see ``counted``)


def counted(test):
    """Count each case hypothesis runs through ``test`` (put it under @given)."""
    @functools.wraps(test)
    def wrapper(*args, **kwargs):
        CASES[test.__name__] += 1
        return test(*args, **kwargs)

    return wrapper


def pytest_sessionfinish(session):
    """A pytest-xdist worker hands its counts to the controller (``pytest_testnodedown``)."""
    if hasattr(session.config, "workeroutput"):
        session.config.workeroutput["hypothesis_cases"] = dict(CASES)


def pytest_testnodedown(node, error):
    CASES.update(getattr(node, "workeroutput", {}).get("hypothesis_cases", {}))


def pytest_terminal_summary(terminalreporter):
    if CASES:
        terminalreporter.write_line(f"hypothesis: {sum(CASES.values())} cases in {len(CASES)} "
                                    f"property tests")


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


def paper_P_eff(s_zm, s_zu, s_vm, s_vu):
    """The paper's effective matrix P_eff, written out from its overlaps (paper.md s.4)."""
    return np.array([[1, 1, 0, 0], [0, 1, s_zm, s_zu], [1, 1, 0, 0], [0, 0, s_vm, s_vu]], float)


def central_difference(agent, loss, name: str, i: int, h: float = 1e-6) -> float:
    """(loss(agent + h e_i) - loss(agent - h e_i)) / 2h for entry i of the tensor ``name``:
    ``loss(agent) -> scalar tensor``, evaluated on detached copies."""
    vals = []
    for sign in (1, -1):
        b = agent.detached()
        with torch.no_grad():
            b.tensors[name][i] += sign * h
        vals.append(loss(b).item())
    return (vals[0] - vals[1]) / (2 * h)
