"""Root conftest: the doctests under stability/ run in float64 like the tests (the
library itself never enables x64 on import)."""

import jax

jax.config.update("jax_enable_x64", True)
