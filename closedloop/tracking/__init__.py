"""The motor tracking task (paper s.7): a continuous-time linear RNN steers a 2-D point mass
along a reference made of sinusoids, trained closed-loop or as an open-loop twin.
Introduced in Chapter 4.

Units: time in seconds (one step = dt = 0.1 s), frequencies in Hz, angular frequencies in
rad/s. Shapes: plant states q (..., 4) = (x, vx, y, vy); controls u (..., 2) = (ax, ay);
references r (T+1, B, 2) at t = 0..T; K sinusoids, N neurons, B references per batch.
Trajectories are time first, as everywhere in the package (``coupled.rollout``): time, then
ensemble members, then the batch, then features.

The modules, each one concept (import the names from here, ``tracking.X``):

- ``task``: the plant ``PointMass``, the references ``Sinusoids`` and their ``Scoring`` under
  a ``TrackingConvention`` (pairing, units of the loss);
- ``network``: the controller ``TrackingRNN`` (one network or an ensemble, ``draw_networks``)
  and how far training moved its input weights (``input_weight_change``);
- ``engine``: the loop stepped with the clamp (``rollout``) and as a linear system
  (``closed_loop_matrix``, impulse responses through ``closedloop.linsys``);
- ``loss``: the exact per-frequency loss (``linear_response``, ``Response``), the sampled
  losses of the clamped plant;
- ``training``: ``train_tracking``, closed-loop and the open-loop twin, and the cost of one
  stepped batch (``stepped_batch_seconds``);
- ``acquisition``: reading a history (acquisition epochs, of every member too, ``in_order``
  and ``n_in_order``, ``no_earlier``, ``normalized``, ``excursion``, ``unstable_share``,
  ``clamped_epochs``, probe losses, snapshots, all read by one rule: ``record_index``), how
  an acquisition disturbs the frequencies learned before (``probe_rise``,
  ``acquisition_rises``, ``quiet_rises``, ``pair_paths``), Adam's loss spikes, which are
  told apart from that (``loss_spikes``, ``near_spike``), and the human and authors'
  constants.
"""

from __future__ import annotations

from .. import conventions  # noqa: F401 - read as tracking.conventions before the split
from .._threads import single_thread
from ..agents import make_generator
from ..envs import DTYPE
from ..history import History
from ..stages import settles
from .acquisition import (AUTHORS_ACQUISITION, AUTHORS_EPOCHS, AUTHORS_TOP_IM, HUMAN_ACQUISITION,
                          acquisition_epoch, acquisition_epochs, acquisition_rises,
                          acquisition_table, agent_at, clamped_epochs, excursion,
                          frequency_match, in_order, largest_frequency, loss_spikes,
                          member_acquisitions, n_comparable, n_in_order, near_spike,
                          no_earlier, normalized, pair_paths,
                          probe_at, probe_epochs, probe_rise, quiet_rises, record_index,
                          running_median, unstable_share)
from .engine import (closed_loop_matrix, closed_loop_rates, open_loop_controls, rollout,
                     student_response)
from .loss import (OUTPUTS, Response, linear_response, sampled_losses,
                   tracking_loss)
from .network import TrackingRNN, draw_networks, input_weight_change, other_seeds
from .task import POS, PointMass, Scoring, Sinusoids, history_scoring
from .training import MODES, stepped_batch_seconds, train_tracking

# the public names of the single module ``tracking.py`` was before it became this package
# (``History``, ``DTYPE``, ... included: the book and tests may read them as ``tracking.X``)
__all__ = [
    "AUTHORS_ACQUISITION", "AUTHORS_EPOCHS", "AUTHORS_TOP_IM", "DTYPE", "HUMAN_ACQUISITION",
    "History", "MODES",
    "OUTPUTS", "POS", "PointMass", "Response", "Scoring", "Sinusoids", "TrackingRNN",
    "acquisition_epoch", "acquisition_epochs", "agent_at", "closed_loop_matrix",
    "closed_loop_rates", "conventions", "excursion", "frequency_match", "history_scoring",
    "in_order", "largest_frequency", "linear_response", "make_generator", "normalized",
    "open_loop_controls", "probe_at", "probe_epochs", "rollout", "running_median",
    "sampled_losses", "settles", "single_thread", "student_response", "tracking_loss",
    "train_tracking",
    # read by Chapter 4's claims and cells (closedloop.claims.ch4)
    "acquisition_table", "clamped_epochs", "draw_networks", "input_weight_change", "other_seeds",
    "member_acquisitions", "n_comparable", "n_in_order", "no_earlier", "record_index",
    "stepped_batch_seconds", "unstable_share",
    # how an acquisition disturbs the frequencies learned before (Chapter 4)
    "acquisition_rises", "pair_paths", "probe_rise", "quiet_rises",
    # Adam's loss spikes, told apart from that disturbance (Chapter 4)
    "loss_spikes", "near_spike",
]
