"""Noisy quadratics: problems, spectra, sampled rollouts and simulation, exact moments
(also under a time-varying schedule)."""

from stability.problems import spectra as spectra
from stability.problems.moments import LinearisedLoopWarning as LinearisedLoopWarning
from stability.problems.moments import expected_losses as expected_losses
from stability.problems.moments import modal_blocks as modal_blocks
from stability.problems.moments import stationary_loss as stationary_loss
from stability.problems.quadratic import NoisyQuadratic as NoisyQuadratic
from stability.problems.quadratic import noisy_quadratic as noisy_quadratic
from stability.problems.quadratic import random_rotation as random_rotation
from stability.problems.quadratic import rotated as rotated
from stability.problems.rollout import Rollout as Rollout
from stability.problems.rollout import rollout as rollout
from stability.problems.schedules import (
    time_varying_expected_losses as time_varying_expected_losses,
)
from stability.problems.simulate import SimulationRecord as SimulationRecord
from stability.problems.simulate import simulate as simulate
