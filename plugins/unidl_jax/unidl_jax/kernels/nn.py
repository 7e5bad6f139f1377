"""JAX nn kernels: activations, softmax, normalization, dropout.

Activations are ``jax.nn``'s, each the spec's formula (``unidl/spec/nn.py``). The formulas of
several steps (gelu, softmax, the normalizations, ...) are computed in float32 for float16 and
bfloat16 inputs and rounded once at the end, as the NumPy and PyTorch kernels do.

``dropout`` with an int ``seed`` uses the spec's portable host mask; with ``seed=None`` (also
what the layers pass inside a ``jax.jit`` trace) it draws from the backend's generator
(:func:`unidl_jax.state.next_key`), which a compiled step threads like a Variable.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from unidl.spec.nn import check_rate, dropout_mask, norm_axes, param_broadcast_shape
from unidl_jax.state import next_key

_HALF = (jnp.float16, jnp.bfloat16)


def _up(x):
    """``x`` in its compute dtype (float32 for half precision)."""
    return x.astype(jnp.float32) if x.dtype in _HALF else x


def _in_float32(fn):
    """Run ``fn`` with half-precision tensors in float32, rounding the result once."""

    @functools.wraps(fn)
    def kernel(x, *rest):
        if x.dtype not in _HALF:
            return fn(x, *rest)
        rest = tuple(_up(r) if isinstance(r, jax.Array) else r for r in rest)
        return fn(_up(x), *rest).astype(x.dtype)

    return kernel


def leaky_relu(x, negative_slope=0.2):
    return jnp.where(x > 0, x, x * negative_slope)


def elu(x, alpha=1.0):
    return jax.nn.elu(x, alpha)


def gelu(x, approximate=True):
    return jax.nn.gelu(x, approximate=bool(approximate))


def softmax(x, axis=-1):
    return jax.nn.softmax(x, axis=axis)


def log_softmax(x, axis=-1):
    return jax.nn.log_softmax(x, axis=axis)


def _param(p, x, axes):
    """A normalization parameter shaped to broadcast against ``x`` (None stays None)."""
    if p is None:
        return None
    shape = param_broadcast_shape(tuple(p.shape), tuple(x.shape), axes)
    return p if shape is None else p.reshape(shape)


def batch_norm(x, mean, variance, offset=None, scale=None, epsilon=1e-3, axis=-1):
    axes = (axis % max(x.ndim, 1),)
    inv = jax.lax.rsqrt(_param(variance, x, axes) + epsilon)
    if scale is not None:
        inv = inv * _param(scale, x, axes)
    y = (x - _param(mean, x, axes)) * inv
    return y if offset is None else y + _param(offset, x, axes)


def layer_norm(x, gamma=None, beta=None, axis=-1, epsilon=1e-3):
    axes = norm_axes(axis, x.ndim)
    xc = x - jnp.mean(x, axis=axes, keepdims=True)
    var = jnp.mean(xc * xc, axis=axes, keepdims=True)
    y = xc * jax.lax.rsqrt(var + epsilon)
    if gamma is not None:
        y = y * _param(gamma, x, axes)
    return y if beta is None else y + _param(beta, x, axes)


def dropout(x, rate, seed=None, training=True):
    rate = check_rate(rate)
    if not training or rate == 0.0:
        return x
    if seed is None:
        keep = jax.random.bernoulli(next_key(), 1.0 - rate, x.shape)
    else:
        keep = jnp.asarray(dropout_mask(tuple(x.shape), rate, seed))
    scale = jnp.asarray(1.0 / (1.0 - rate), x.dtype)
    return jnp.where(keep, x * scale, jnp.zeros((), x.dtype))


KERNELS = {
    "relu": jax.nn.relu,
    "relu6": jax.nn.relu6,
    "leaky_relu": leaky_relu,
    "elu": _in_float32(elu),
    "selu": _in_float32(jax.nn.selu),
    "gelu": _in_float32(gelu),
    "sigmoid": _in_float32(jax.nn.sigmoid),
    "hard_sigmoid": _in_float32(jax.nn.hard_sigmoid),
    "softplus": _in_float32(jax.nn.softplus),
    "silu": _in_float32(jax.nn.silu),
    "softmax": _in_float32(softmax),
    "log_softmax": _in_float32(log_softmax),
    "batch_norm": _in_float32(batch_norm),
    "layer_norm": _in_float32(layer_norm),
    "dropout": dropout,
}
