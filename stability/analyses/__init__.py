"""Spectral radius, stability regions, robust and symbolic analyses."""

from stability.analyses.regions import StabilityRegion as StabilityRegion
from stability.analyses.regions import (
    max_stable_learning_rate as max_stable_learning_rate,
)
from stability.analyses.regions import mode_radius as mode_radius
from stability.analyses.regions import stability_region as stability_region
from stability.analyses.spectral import convergence_rate as convergence_rate
from stability.analyses.spectral import eigenvalues as eigenvalues
from stability.analyses.spectral import is_stable as is_stable
from stability.analyses.spectral import spectral_radius as spectral_radius
