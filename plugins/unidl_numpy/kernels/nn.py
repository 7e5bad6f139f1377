"""NumPy nn kernels: activations, softmax, normalization, dropout.

float16 inputs are computed in float32 and rounded once at the end (NumPy's float16 loops
round after every step, which adds up over a multi-step formula).
"""

import math

import numpy as np

from unidl.spec.nn import (
    SELU_ALPHA,
    SELU_SCALE,
    check_rate,
    dropout_mask,
    norm_axes,
    param_broadcast_shape,
)
from unidl_numpy.kernels.elementwise import keep_or_zero as _keep
from unidl_numpy.kernels.elementwise import where as _where

_GELU_C = math.sqrt(2.0 / math.pi)
_INV_SQRT2 = 1.0 / math.sqrt(2.0)
_RNG = np.random.default_rng()  # for dropout with seed=None


def seed_dropout(seed: int) -> None:
    """Reseed the generator of ``dropout`` with ``seed=None`` (``unidl.random.set_seed``)."""
    global _RNG
    _RNG = np.random.default_rng(int(seed))


def _half_to_float(fn):
    """Run ``fn`` on float32 copies of float16 arrays and cast the result back."""

    def kernel(x, *rest):
        if x.dtype == np.float16:
            rest = tuple(r.astype(np.float32) if isinstance(r, np.ndarray) else r for r in rest)
            return fn(x.astype(np.float32), *rest).astype(np.float16)
        return fn(x, *rest)

    kernel.__name__ = fn.__name__
    return kernel


def relu(x):
    return np.maximum(x, 0)


def relu6(x):
    return np.minimum(np.maximum(x, 0), 6)


def leaky_relu(x, negative_slope=0.2):
    return np.where(x > 0, x, x * negative_slope)


def elu(x, alpha=1.0):
    return np.where(x > 0, x, np.expm1(np.minimum(x, 0)) * alpha)


def selu(x):
    return np.where(x > 0, x * SELU_SCALE, np.expm1(np.minimum(x, 0)) * (SELU_SCALE * SELU_ALPHA))


def _erf(x):
    from unidl_numpy.kernels.elementwise import KERNELS as _EW

    fn = _EW.get("erf")
    if fn is None:
        return np.vectorize(math.erf, otypes=[x.dtype])(x)
    return fn(x)


@_half_to_float
def gelu(x, approximate=True):
    if approximate:
        return 0.5 * x * (1.0 + np.tanh(_GELU_C * (x + 0.044715 * (x * x * x))))
    return 0.5 * x * (1.0 + _erf(x * _INV_SQRT2))


@_half_to_float
def sigmoid(x):
    # 1 / (1 + exp(-x)) in three in-place passes: where exp(-x) overflows (x below about -88
    # in float32) the result is 1 / inf = 0, the float32 value of sigmoid there up to a
    # subnormal
    out = np.negative(x, out=np.empty(np.shape(x), x.dtype))
    with np.errstate(over="ignore"):
        np.exp(out, out=out)
    np.add(out, 1.0, out=out)
    return np.reciprocal(out, out=out)


def hard_sigmoid(x):
    return np.minimum(np.maximum(x + 3, 0), 6) / 6


def softplus(x):
    return np.logaddexp(x, 0)


@_half_to_float
def silu(x):
    return x * sigmoid(x)


@_half_to_float
def softmax(x, axis=-1):
    if x.size == 0:
        return x.copy()
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


@_half_to_float
def log_softmax(x, axis=-1):
    if x.size == 0:
        return x.copy()
    z = x - np.max(x, axis=axis, keepdims=True)
    return z - np.log(np.sum(np.exp(z), axis=axis, keepdims=True))


def _param(p, x, axes):
    shp = param_broadcast_shape(p.shape, x.shape, axes)
    return p if shp is None else p.reshape(shp)


@_half_to_float
def batch_norm(x, mean, variance, offset=None, scale=None, epsilon=1e-3, axis=-1):
    axes = (axis % max(x.ndim, 1),)
    inv = 1.0 / np.sqrt(_param(variance, x, axes) + epsilon)
    if scale is not None:
        inv = inv * _param(scale, x, axes)
    y = (x - _param(mean, x, axes)) * inv
    if offset is not None:
        y = y + _param(offset, x, axes)
    return y


@_half_to_float
def layer_norm(x, gamma=None, beta=None, axis=-1, epsilon=1e-3):
    axes = norm_axes(axis, x.ndim)
    if x.size == 0:
        y = x.copy()
    else:
        mu = np.mean(x, axis=axes, keepdims=True)
        xc = x - mu
        var = np.mean(xc * xc, axis=axes, keepdims=True)
        y = xc / np.sqrt(var + epsilon)
    if gamma is not None:
        y = y * _param(gamma, x, axes)
    if beta is not None:
        y = y + _param(beta, x, axes)
    return y


def dropout(x, rate, seed=None, training=True):
    rate = check_rate(rate)
    if not training or rate == 0.0:
        return x
    if seed is None:  # (float32 draws where x is float32: half the bits to generate)
        draw = np.float32 if x.dtype.itemsize <= 4 else np.float64
        mask = _RNG.random(x.shape, dtype=draw) >= rate
    else:
        mask = dropout_mask(x.shape, rate, seed)
    scale = x.dtype.type(1.0 / (1.0 - rate))
    if x.dtype.kind == "f":
        return _keep(mask, x * scale)  # (a branch-free np.where)
    return _where(mask, x * scale, np.zeros((), x.dtype))


KERNELS = {
    "relu": relu,
    "relu6": relu6,
    "leaky_relu": leaky_relu,
    "elu": _half_to_float(elu),
    "selu": _half_to_float(selu),
    "gelu": gelu,
    "sigmoid": sigmoid,
    "hard_sigmoid": _half_to_float(hard_sigmoid),
    "softplus": _half_to_float(softplus),
    "silu": silu,
    "softmax": softmax,
    "log_softmax": log_softmax,
    "batch_norm": batch_norm,
    "layer_norm": layer_norm,
    "dropout": dropout,
}
