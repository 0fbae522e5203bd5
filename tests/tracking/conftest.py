"""The fixture every tracking test module may ask for."""

import pytest

from closedloop import tracking as tr


@pytest.fixture
def refs():
    """The paper's references: 0.1-0.4 Hz, 300 steps of 0.1 s."""
    return tr.Sinusoids()
