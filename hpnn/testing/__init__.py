"""Test helpers: the finite-difference gradient checker and the op test base class.

The package itself never imports this module.
"""

from hpnn.testing.gradcheck import OpTest, check_grad, numerical_grad

__all__ = ["OpTest", "check_grad", "numerical_grad"]
