"""Optimizers, hand-designed and learned, as dynamical systems.

Subpackages follow the data flow: ``problems`` and ``optimizers`` feed ``operators``
(closed-loop maps), which feed ``analyses`` (spectral radius, regions, robustness),
which feed ``lemmas`` (the paper's claims as code). ``lopt`` holds the STAR learned
optimizer and its meta-training; ``plotting`` draws records; ``figures`` turns records
into the report's figures, and ``reproduce`` is its command.

Importing the package never changes JAX's global configuration: enable float64 yourself
(``jax.config.update("jax_enable_x64", True)``) before running analyses; the CLI and the
tests do.
"""

import importlib

__version__ = "0.1.0"

_SUBPACKAGES = (
    "analyses",
    "figures",
    "lemmas",
    "lopt",
    "operators",
    "optimizers",
    "plotting",
    "problems",
    "reproduce",
)


def __getattr__(name):
    if name in _SUBPACKAGES:
        return importlib.import_module(f"stability.{name}")
    raise AttributeError(f"module 'stability' has no attribute {name!r}")


def __dir__():
    return sorted((*globals(), *_SUBPACKAGES))
