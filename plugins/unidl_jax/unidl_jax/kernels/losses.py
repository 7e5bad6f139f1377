"""JAX loss kernels (Keras 3 semantics; see ``unidl/spec/losses.py``).

Per-example losses, reduced over the class/feature axis only. From logits: ``jax.nn``'s
``log_softmax`` and ``softplus`` (stable for logits of any size); from probabilities: the
scores divided by their sum over the class axis (categorical losses) and clipped to
``[EPSILON, 1 - EPSILON]``. The clip is written with ``where`` so that its gradient is 1 on
the bounds, as the spec's rule (``jnp.clip`` would give 1/2 there). Half-precision inputs are
computed in float32 and the result rounded once.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from unidl.spec.losses import EPSILON

_HALF = (jnp.float16, jnp.bfloat16)


def _up(x):
    """``(x as a float array fit for the math, result dtype)``."""
    if x.dtype in _HALF:
        return x.astype(jnp.float32), x.dtype
    if not jnp.issubdtype(x.dtype, jnp.floating):
        return x.astype(jnp.float32), jnp.dtype(jnp.float32)
    return x, x.dtype


def _clip(p):
    """``p`` clipped to ``[EPSILON, 1 - EPSILON]``; gradient 1 inside, bounds included."""
    lo, hi = jnp.asarray(EPSILON, p.dtype), jnp.asarray(1.0 - EPSILON, p.dtype)
    return jnp.where(p < lo, lo, jnp.where(p > hi, hi, p))


def _log_probs(x, from_logits, ax):
    if from_logits:
        return jax.nn.log_softmax(x, axis=ax)
    return jnp.log(_clip(x / jnp.sum(x, axis=ax, keepdims=True)))


def sparse_categorical_crossentropy(target, output, from_logits=False, axis=-1):
    x, dt = _up(output)
    ax = axis % x.ndim
    if target.ndim == x.ndim:
        target = jnp.squeeze(target, ax)
    idx = jnp.expand_dims(target.astype(jnp.int32), ax)
    lp = _log_probs(x, from_logits, ax)
    return (-jnp.squeeze(jnp.take_along_axis(lp, idx, axis=ax), ax)).astype(dt)


def categorical_crossentropy(target, output, from_logits=False, axis=-1):
    x, dt = _up(output)
    ax = axis % x.ndim
    out = -jnp.sum(target.astype(x.dtype) * _log_probs(x, from_logits, ax), axis=ax)
    return out.astype(dt)


def binary_crossentropy(target, output, from_logits=False):
    z, dt = _up(output)
    t = target.astype(z.dtype)
    if from_logits:
        per = jax.nn.softplus(z) - z * t
    else:  # clip(1 - z) rather than 1 - clip(z): 1 - 1e-7 is not exact in float32
        per = -(t * jnp.log(_clip(z)) + (1.0 - t) * jnp.log(_clip(1.0 - z)))
    return jnp.mean(per, axis=-1).astype(dt)


def mean_squared_error(y_true, y_pred):
    y, dt = _up(y_pred)
    d = y - y_true.astype(y.dtype)
    return jnp.mean(d * d, axis=-1).astype(dt)


KERNELS = {
    "sparse_categorical_crossentropy": sparse_categorical_crossentropy,
    "categorical_crossentropy": categorical_crossentropy,
    "binary_crossentropy": binary_crossentropy,
    "mean_squared_error": mean_squared_error,
}
