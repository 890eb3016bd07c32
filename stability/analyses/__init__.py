"""Spectral radius, stability regions, robust and symbolic analyses."""

from stability.analyses import robust as robust
from stability.analyses import symbolic as symbolic
from stability.analyses.certified import CertifiedRate as CertifiedRate
from stability.analyses.certified import CertifiedRegion as CertifiedRegion
from stability.analyses.certified import certified_rate as certified_rate
from stability.analyses.certified import certified_region as certified_region
from stability.analyses.eigen import Eigenpairs as Eigenpairs
from stability.analyses.eigen import arnoldi as arnoldi
from stability.analyses.eigen import lanczos as lanczos
from stability.analyses.growth import fit_growth as fit_growth
from stability.analyses.regions import StabilityRegion as StabilityRegion
from stability.analyses.regions import (
    max_stable_learning_rate as max_stable_learning_rate,
)
from stability.analyses.regions import mode_radius as mode_radius
from stability.analyses.regions import stability_region as stability_region
from stability.analyses.regions import stable_learning_rates as stable_learning_rates
from stability.analyses.robust import CurvatureWorstCase as CurvatureWorstCase
from stability.analyses.robust import MultiplicativeWorstCase as MultiplicativeWorstCase
from stability.analyses.robust import multiplicative_radius as multiplicative_radius
from stability.analyses.robust import worst_case_curvature as worst_case_curvature
from stability.analyses.robust import (
    worst_case_multiplicative as worst_case_multiplicative,
)
from stability.analyses.schur import schur_stable as schur_stable
from stability.analyses.spectral import convergence_rate as convergence_rate
from stability.analyses.spectral import eigenvalues as eigenvalues
from stability.analyses.spectral import is_marginal as is_marginal
from stability.analyses.spectral import is_stable as is_stable
from stability.analyses.spectral import spectral_radius as spectral_radius
from stability.analyses.symbolic import stability_boundary as stability_boundary
