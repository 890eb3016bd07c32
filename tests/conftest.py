"""Test-wide settings: float64 for the analyses and a bounded hypothesis profile for CI.

The library never enables x64 on import; the tests do it here, once, so every analysis
test runs in float64. Code that must stay float32 (STAR) is tested under x64 on purpose:
it must not be promoted.
"""

import os

os.environ.setdefault("MPLBACKEND", "Agg")

import jax  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

jax.config.update("jax_enable_x64", True)

settings.register_profile(
    "ci",
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,
)
settings.register_profile(
    "full",
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", max_examples=20, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
