"""Mixed precision: compute in float16 or bfloat16, keep the weights in float32.

* :func:`set_global_policy` (``"mixed_float16"``, ``"mixed_bfloat16"``, ``"float32"``) sets
  the policy of layers created afterwards; a layer's ``dtype=`` argument sets its own
  (``Dense(10, dtype="float32")``). See :class:`DTypePolicy`.
* A layer with a mixed policy casts its float inputs and reads its trainable weights in the
  compute dtype (:mod:`unidl.mixed_precision.autocast`); a model with one returns float32.
* :class:`LossScaleOptimizer`: dynamic loss scaling for float16, which ``Model.compile``
  wraps around the optimizer when the model's policy computes in float16.

Example:
    >>> import unidl
    >>> from unidl import layers, mixed_precision, ops
    >>> mixed_precision.set_global_policy("mixed_float16")
    >>> with unidl.use_backend("numpy"):
    ...     model = unidl.Sequential([layers.Dense(4, activation="relu"),
    ...                               layers.Dense(2, activation="softmax")])
    ...     y = model(ops.ones((1, 3)))
    ...     ops.dtype(y), model.layers[0].kernel.dtype, model.layers[0].compute_dtype
    ('float32', 'float32', 'float16')
    >>> mixed_precision.set_global_policy("float32")

See ``docs/efficiency.md`` ("Mixed precision").
"""

from __future__ import annotations

from unidl.mixed_precision.policy import (
    MIXED_POLICIES,
    DTypePolicy,
    Policy,
    dtype_policy,
    global_policy,
    set_dtype_policy,
    set_global_policy,
)

__all__ = ["DTypePolicy", "Policy", "set_global_policy", "global_policy", "set_dtype_policy",
           "dtype_policy", "LossScaleOptimizer", "MIXED_POLICIES"]


def __getattr__(name):
    if name == "LossScaleOptimizer":  # (imported on first use: it needs the optimizers)
        from unidl.mixed_precision.loss_scale import LossScaleOptimizer

        globals()[name] = LossScaleOptimizer
        return LossScaleOptimizer
    raise AttributeError(f"module 'unidl.mixed_precision' has no attribute {name!r}")
