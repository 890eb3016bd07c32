"""Closed-loop update operators over parameters and optimizer state."""

from stability.operators.closed_loop import ClosedLoop as ClosedLoop
from stability.operators.closed_loop import closed_loop as closed_loop
from stability.operators.closed_loop import linear_operator as linear_operator
from stability.operators.closed_loop import nominal_closed_loop as nominal_closed_loop
from stability.operators.closed_loop import step_function as step_function
