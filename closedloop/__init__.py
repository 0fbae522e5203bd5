"""closedloop: the shared code of the executable book on Ger & Barak (NeurIPS 2025),
"Learning Dynamics of RNNs in Closed-Loop Environments"."""

from .agents import RankOneAgent, RNNAgent
from .envs import DoubleIntegrator, UniformBox

__all__ = ["DoubleIntegrator", "UniformBox", "RNNAgent", "RankOneAgent"]
__version__ = "0.1.0"
