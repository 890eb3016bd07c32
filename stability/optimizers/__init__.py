"""Hand-designed optimizers (optax), their closed-form per-mode blocks, and the
registry :data:`FAMILIES` of the linear families."""

from stability.optimizers import modes as modes
from stability.optimizers.families import FAMILIES as FAMILIES
from stability.optimizers.families import Family as Family
from stability.optimizers.learned import learned_momentum as learned_momentum
from stability.optimizers.linear import AdamAggMoState as AdamAggMoState
from stability.optimizers.linear import MomentumState as MomentumState
from stability.optimizers.linear import adam_aggmo as adam_aggmo
from stability.optimizers.linear import aggmo as aggmo
from stability.optimizers.linear import ema_momentum as ema_momentum
from stability.optimizers.linear import gd as gd
from stability.optimizers.linear import heavy_ball as heavy_ball
from stability.optimizers.linear import nesterov as nesterov
from stability.optimizers.linear import nominal_linear as nominal_linear
from stability.optimizers.linear import preconditioned as preconditioned
