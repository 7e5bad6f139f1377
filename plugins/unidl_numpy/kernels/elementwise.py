"""NumPy elementwise kernels.

Inputs arrive converted and promoted (see ``unidl.backend.binding``); NumPy ufuncs keep the
input dtype, so most ops are the ufunc itself.
"""

from __future__ import annotations

import math

import numpy as np

# ---- erf --------------------------------------------------------------------------------
# NumPy has no erf. For |x| < 2.5 the everywhere-positive series
#   erf(x) = 2/sqrt(pi) * x * exp(-x^2) * sum_k (2x^2)^k / (1*3*...*(2k+1))
# (no cancellation); for |x| >= 2.5 the continued fraction
#   erfc(x) = exp(-x^2)/sqrt(pi) / (x + (1/2)/(x + (2/2)/(x + (3/2)/(x + ...))))
# evaluated backwards from a fixed depth. Both are summed in float64: 40 series terms and
# a depth of 30 give about 1e-16 absolute error (checked against math.erf on a dense grid);
# lower precision inputs use fewer terms (error below 1e-11).
_SERIES_SPLIT = 2.5


def _series_coefficients(n):
    c = [1.0]
    for k in range(1, n):
        c.append(c[-1] * 2.0 / (2 * k + 1))
    return c


_COEF = {64: _series_coefficients(40), 32: _series_coefficients(30)}
_DEPTH = {64: 30, 32: 20}
_INV_SQRT_PI = 1.0 / math.sqrt(math.pi)


def _erf_small(x, bits):
    y = x * x
    coef = _COEF[bits]
    s = np.full_like(x, coef[-1])
    for c in coef[-2::-1]:
        s *= y
        s += c
    return 2.0 * _INV_SQRT_PI * x * np.exp(-y) * s


def _erf_large(x, bits):
    ax = np.abs(x)
    f = ax.copy()
    for k in range(_DEPTH[bits], 0, -1):
        f = ax + (0.5 * k) / f
    erfc = np.exp(-ax * ax) * _INV_SQRT_PI / f
    return np.copysign(1.0 - erfc, x)


def erf(x):
    bits = 64 if x.dtype.itemsize >= 8 else 32
    v = np.asarray(x, np.float64)
    out = np.empty_like(v)
    with np.errstate(all="ignore"):
        small = np.abs(v) < _SERIES_SPLIT
        if small.all():
            out = _erf_small(v, bits)
        else:
            out[small] = _erf_small(v[small], bits)
            large = ~small  # |x| >= 2.5, infinities and NaN (the fraction keeps NaN)
            out[large] = _erf_large(v[large], bits)
    return out.astype(x.dtype, copy=False)


# ---- other kernels ----------------------------------------------------------------------
def rsqrt(x):
    return np.reciprocal(np.sqrt(x))


def clip(x, x_min, x_max):
    if x_min is None and x_max is None:
        return x.copy()
    return np.clip(x, x_min, x_max)


_BITS = {2: np.int16, 4: np.int32, 8: np.int64}


def keep_or_zero(condition, x):
    """``where(condition, x, +0.0)`` for a bool ``condition`` of ``x``'s shape (a float
    array that may be overwritten): the bit select of :func:`where` without its checks (the
    masks of relu and dropout and their gradients, every training step)."""
    it = _BITS.get(x.dtype.itemsize)
    if it is None or condition.size <= 256 or condition.shape != x.shape:
        return np.where(condition, x, np.zeros((), x.dtype))
    m = condition.astype(it)
    np.negative(m, out=m)                           # True -> all ones, False -> 0
    return np.bitwise_and(x.view(it), m, out=m).view(x.dtype)


def where(condition, x, y):
    if condition.dtype != np.bool_:
        condition = condition.astype(bool)
    it = _BITS.get(x.dtype.itemsize)
    if (it is not None and x.dtype == y.dtype and x.dtype.kind == "f" and condition.size > 256
            and np.broadcast_shapes(condition.shape, x.shape, y.shape) == condition.shape):
        # a branch-free select on the bit patterns (np.where is slow on random conditions,
        # e.g. a relu mask): bitwise the same result, ``x`` where the mask is all ones
        m = condition.astype(it)
        np.negative(m, out=m)                       # True -> all ones, False -> 0
        out = np.bitwise_and(x.view(it), m)
        if y.any() or np.signbit(y).any():          # (a +0.0 y adds nothing)
            np.invert(m, out=m)
            np.bitwise_and(y.view(it), m, out=m)
            np.bitwise_or(out, m, out=out)
        return out.view(x.dtype)
    return np.where(condition, x, y)


KERNELS = {
    "add": np.add,
    "subtract": np.subtract,
    "multiply": np.multiply,
    "divide": np.true_divide,
    "floor_divide": np.floor_divide,
    "mod": np.remainder,
    "negative": np.negative,
    "power": np.power,
    "exp": np.exp,
    "log": np.log,
    "log1p": np.log1p,
    "expm1": np.expm1,
    "sqrt": np.sqrt,
    "rsqrt": rsqrt,
    "square": np.square,
    "reciprocal": np.reciprocal,
    "abs": np.abs,
    "sign": np.sign,
    "floor": np.floor,
    "ceil": np.ceil,
    "round": np.round,
    "maximum": np.maximum,
    "minimum": np.minimum,
    "clip": clip,
    "where": where,
    "sin": np.sin,
    "cos": np.cos,
    "tan": np.tan,
    "tanh": np.tanh,
    "arctan": np.arctan,
    "erf": erf,
    "equal": np.equal,
    "not_equal": np.not_equal,
    "less": np.less,
    "less_equal": np.less_equal,
    "greater": np.greater,
    "greater_equal": np.greater_equal,
    "logical_and": np.logical_and,
    "logical_or": np.logical_or,
    "logical_not": np.logical_not,
    "isnan": np.isnan,
    "isinf": np.isinf,
    "isfinite": np.isfinite,
}
