"""Closed-loop update operators over parameters and optimizer state."""

from stability.operators.closed_loop import ClosedLoop as ClosedLoop
from stability.operators.closed_loop import closed_loop as closed_loop
from stability.operators.closed_loop import joint_state as joint_state
from stability.operators.closed_loop import linear_operator as linear_operator
from stability.operators.closed_loop import nominal_closed_loop as nominal_closed_loop
from stability.operators.closed_loop import step_function as step_function
from stability.operators.network import (
    diagonal_preconditioner as diagonal_preconditioner,
)
from stability.operators.network import hessian_operator as hessian_operator
from stability.operators.network import hvp as hvp
from stability.operators.network import step_jacobian as step_jacobian
from stability.operators.network import threshold as threshold
from stability.operators.network import training_step as training_step
