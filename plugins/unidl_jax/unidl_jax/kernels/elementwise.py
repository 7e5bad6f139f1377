"""JAX elementwise kernels.

Inputs arrive converted and promoted to one dtype, so ``jax.numpy``'s own promotion never
acts. ``jnp`` already follows unidl's conventions: ``floor_divide``/``mod`` take Python's
signs, ``round`` rounds half to even, ``maximum``/``minimum`` propagate NaN and split the
gradient at ties, ``power``'s gradients are 0 where the spec takes them as 0.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def clip(x, x_min, x_max):
    """``min(max(x, x_min), x_max)``, NaN kept; at a bound the gradient goes to ``x`` (the
    spec's rule: ``jnp.clip`` would split it at ties)."""
    if x_min is not None:
        x = jnp.where(x < x_min, x_min, x)
    if x_max is not None:
        x = jnp.where(x > x_max, x_max, x)
    return x


def where(condition, x, y):
    if condition.dtype != jnp.bool_:
        condition = condition != 0
    return jnp.where(condition, x, y)


KERNELS = {
    "add": jnp.add,
    "subtract": jnp.subtract,
    "multiply": jnp.multiply,
    "divide": jnp.true_divide,
    "floor_divide": jnp.floor_divide,
    "mod": jnp.remainder,
    "negative": jnp.negative,
    "power": jnp.power,
    "exp": jnp.exp,
    "log": jnp.log,
    "log1p": jnp.log1p,
    "expm1": jnp.expm1,
    "sqrt": jnp.sqrt,
    "rsqrt": jax.lax.rsqrt,
    "square": jnp.square,
    "reciprocal": jnp.reciprocal,
    "abs": jnp.abs,
    "sign": jnp.sign,
    "floor": jnp.floor,
    "ceil": jnp.ceil,
    "round": jnp.round,
    "maximum": jnp.maximum,
    "minimum": jnp.minimum,
    "clip": clip,
    "where": where,
    "sin": jnp.sin,
    "cos": jnp.cos,
    "tan": jnp.tan,
    "tanh": jnp.tanh,
    "arctan": jnp.arctan,
    "erf": jax.lax.erf,
    "equal": jnp.equal,
    "not_equal": jnp.not_equal,
    "less": jnp.less,
    "less_equal": jnp.less_equal,
    "greater": jnp.greater,
    "greater_equal": jnp.greater_equal,
    "logical_and": jnp.logical_and,
    "logical_or": jnp.logical_or,
    "logical_not": jnp.logical_not,
    "isnan": jnp.isnan,
    "isinf": jnp.isinf,
    "isfinite": jnp.isfinite,
}
