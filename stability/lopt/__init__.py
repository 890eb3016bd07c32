"""Learned optimizers: STAR and the small_fc_lopt baseline, their meta-parameters.

Submodules: :mod:`~stability.lopt.theta` (meta-parameter layout, initialisation,
validation, conversion from learned_optimization) and :mod:`~stability.lopt.star`
(the optimizers as optax transformations). Tasks and meta-training live in their own
submodules and are imported explicitly.
"""

from stability.lopt.io import ThetaConfigWarning as ThetaConfigWarning
from stability.lopt.io import load_metadata as load_metadata
from stability.lopt.io import load_optimizer as load_optimizer
from stability.lopt.io import load_theta as load_theta
from stability.lopt.io import save_theta as save_theta
from stability.lopt.star import NOMINAL_ESTIMATORS as NOMINAL_ESTIMATORS
from stability.lopt.star import LOptState as LOptState
from stability.lopt.star import cpu_compiler_options as cpu_compiler_options
from stability.lopt.star import small_fc_lopt as small_fc_lopt
from stability.lopt.star import star as star
from stability.lopt.theta import from_learned_optimization as from_learned_optimization
from stability.lopt.theta import init_theta as init_theta
from stability.lopt.theta import num_params as num_params
from stability.lopt.theta import theta_shapes as theta_shapes
from stability.lopt.theta import validate_theta as validate_theta
from stability.lopt.theta import zero_output_layer as zero_output_layer

# Meta-training and evaluation pull in the tasks' data; import them on first use.
_LAZY = {
    "MetaTrainConfig": "stability.lopt.meta_train",
    "MetaTrainResult": "stability.lopt.meta_train",
    "meta_train": "stability.lopt.meta_train",
    "tune_nominal_stepsize": "stability.lopt.meta_train",
    "get_task": "stability.lopt.tasks",
    "task_names": "stability.lopt.tasks",
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'stability.lopt' has no attribute {name!r}")
