"""Learned optimizers: STAR and the small_fc_lopt baseline, their meta-parameters.

Submodules: :mod:`~stability.lopt.theta` (meta-parameter layout, initialisation,
validation, conversion from learned_optimization) and :mod:`~stability.lopt.star`
(the optimizers as optax transformations). Tasks and meta-training live in their own
submodules and are imported explicitly.

The names below load on first use, so that importing a submodule that needs no JAX
(the task registry, for the command line's help) loads none.
"""

import importlib
import sys
import types

#: submodule -> the public names it gives the package
_EXPORTS = {
    "io": (
        "ThetaConfigWarning",
        "load_metadata",
        "load_optimizer",
        "load_theta",
        "save_theta",
    ),
    "star": (
        "NOMINAL_ESTIMATORS",
        "LOptState",
        "cpu_compiler_options",
        "small_fc_lopt",
        "star",
    ),
    "theta": (
        "from_learned_optimization",
        "init_theta",
        "num_params",
        "theta_shapes",
        "validate_theta",
        "zero_output_layer",
    ),
    "meta_train": (
        "MetaTrainConfig",
        "MetaTrainResult",
        "meta_train",
        "tune_nominal_stepsize",
    ),
    "tasks": ("get_task", "task_names"),
}
_SOURCE = {name: module for module, names in _EXPORTS.items() for name in names}


def __getattr__(name):
    if name in _SOURCE:
        module = importlib.import_module(f"{__name__}.{_SOURCE[name]}")
        return getattr(module, name)
    raise AttributeError(f"module 'stability.lopt' has no attribute {name!r}")


def __dir__():
    return sorted({*globals(), *_SOURCE})


class _Package(types.ModuleType):
    """The package's module type: ``stability.lopt.star`` stays the factory."""

    def __setattr__(self, name, value):
        # Importing the submodule ``stability.lopt.star`` binds it on the package;
        # the package's name ``star`` is the factory :func:`star.star`, as it was
        # when the package imported its names eagerly.
        if name == "star" and isinstance(value, types.ModuleType):
            value = value.star
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
