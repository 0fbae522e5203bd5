"""closedloop: the shared code of the executable book on Ger & Barak (NeurIPS 2025),
"Learning Dynamics of RNNs in Closed-Loop Environments".

A chapter imports what it shows from here (and its figures from ``closedloop.figures``)::

    from closedloop import DoubleIntegrator, RankOneAgent, train_closed_loop, detect_stages

Vocabulary, the same in every module:

- a **batch** is the initial states (or references) one loss averages over: axis ``B``;
- an **ensemble** is several networks trained side by side in one computation, each a
  **member**; the ensemble's leading axes are its ``batch_shape`` (one axis ``K`` in practice),
  and a setting given "per member" has one value per member;
- a **sweep** (``closedloop.sweep``) is a grid of trainings, cut into **chunks** that each
  train as one ensemble;
- a **history** (``History``) holds what training recorded, one row per epoch, members on
  axis 1;
- a **convention** (``closedloop.conventions``) is how a loss is formed and when updates start:
  the authors' by default, the book's earlier one by name.
"""

from .agents import OverlapAgent, RankOneAgent, RNNAgent, make_generator
from .conventions import BOOK, PAPER_OPEN_LOOP, PAPER_RANK_ONE, PAPER_TANH, Convention
from .envs import DoubleIntegrator, UniformBox
from .history import History
from .plants import Box, LinearPlant
from .stages import Stages, detect_stages
from .training import train_closed_loop, train_open_loop

__all__ = ["BOOK", "PAPER_OPEN_LOOP", "PAPER_RANK_ONE", "PAPER_TANH", "Box", "Convention",
           "DoubleIntegrator", "History", "LinearPlant", "OverlapAgent", "RNNAgent",
           "RankOneAgent", "Stages",
           "UniformBox", "detect_stages", "make_generator", "train_closed_loop",
           "train_open_loop"]
__version__ = "0.1.0"
