"""Automatic differentiation: one API on every backend.

PyTorch uses ``torch.autograd``, TensorFlow ``tf.GradientTape``, and backends without
autodiff of their own (NumPy, or a third-party backend) use unidl's reverse-mode engine,
which reads each op's gradient rule from the spec.
"""

from unidl.autodiff.api import grad, stop_gradient, value_and_grad, vjp

__all__ = ["grad", "value_and_grad", "vjp", "stop_gradient"]
