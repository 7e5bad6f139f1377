"""NumPy reduction kernels (the living definition of unidl's reductions).

Integer sums and products stay in the input dtype (NumPy would widen them to int64); bool
sums to int32; float16 accumulates in float32 and rounds once at the end.
"""

from __future__ import annotations

import numpy as np

from unidl.spec.rules import normalize_axes

_F16 = np.dtype(np.float16)
_F32 = np.dtype(np.float32)


def _axis(x, axis):
    return None if axis is None else normalize_axes(axis, x.ndim)


def _acc_dtype(x):
    """The dtype NumPy accumulates ``x`` in, for sums and products."""
    if x.dtype == np.bool_:
        return np.dtype(np.int32)
    if x.dtype == _F16:
        return _F32
    return x.dtype


def _out(r, x):
    return r.astype(_F16) if x.dtype == _F16 else r


def sum_(x, axis=None, keepdims=False):
    return _out(np.sum(x, _axis(x, axis), dtype=_acc_dtype(x), keepdims=keepdims), x)


def prod(x, axis=None, keepdims=False):
    return _out(np.prod(x, _axis(x, axis), dtype=_acc_dtype(x), keepdims=keepdims), x)


def _count(x, axes):
    if axes is None:
        return x.size
    return int(np.prod([x.shape[a] for a in axes], dtype=np.int64))


def mean(x, axis=None, keepdims=False):
    ax = _axis(x, axis)
    if axis is None and x.size and x.dtype.kind == "f" and x.dtype.itemsize >= 4:
        # (no 0 / 0 to silence: the same two calls without the errstate block)
        s = np.sum(x, None, dtype=x.dtype, keepdims=keepdims)
        return np.true_divide(s, x.size, dtype=s.dtype)
    with np.errstate(invalid="ignore", divide="ignore"):
        s = np.sum(x, ax, dtype=_acc_dtype(x), keepdims=keepdims)
        return _out(np.true_divide(s, _count(x, ax), dtype=s.dtype), x)


def var(x, axis=None, keepdims=False, ddof=0):
    ax = _axis(x, axis)
    xf = x.astype(_F32) if x.dtype == _F16 else x
    with np.errstate(invalid="ignore", divide="ignore"):
        n = _count(x, ax)
        m = np.true_divide(np.sum(xf, ax, keepdims=True), n, dtype=xf.dtype)
        d = xf - m
        s = np.sum(d * d, ax, keepdims=keepdims)
        return _out(np.true_divide(s, xf.dtype.type(max(n - ddof, 0)), dtype=xf.dtype), x)


def std(x, axis=None, keepdims=False, ddof=0):
    v = var(x.astype(_F32) if x.dtype == _F16 else x, axis, keepdims, ddof)
    return _out(np.sqrt(v), x)


def max_(x, axis=None, keepdims=False):
    return np.max(x, _axis(x, axis), keepdims=keepdims)


def min_(x, axis=None, keepdims=False):
    return np.min(x, _axis(x, axis), keepdims=keepdims)


def _arg(fn):
    def kernel(x, axis=None, keepdims=False):
        if axis is None:
            r = fn(x.reshape(-1))
            return np.reshape(r, (1,) * x.ndim if keepdims else ()).astype(np.int64)
        return fn(x, axis=axis, keepdims=keepdims).astype(np.int64, copy=False)

    return kernel


def logsumexp(x, axis=None, keepdims=False):
    ax = _axis(x, axis)
    xf = x.astype(_F32) if x.dtype == _F16 else x
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        m = np.max(xf, ax, keepdims=True, initial=-np.inf)
        m = np.where(np.isfinite(m), m, xf.dtype.type(0))
        out = np.log(np.sum(np.exp(xf - m), ax, keepdims=True)) + m
    if not keepdims:
        out = out.reshape(()) if ax is None else np.squeeze(out, ax)
    return _out(out, x)


def cumsum(x, axis=None):
    if axis is None:
        x, axis = x.reshape(-1), 0
    return _out(np.cumsum(x, axis=axis, dtype=_acc_dtype(x)), x)


def any_(x, axis=None, keepdims=False):
    return np.any(x, _axis(x, axis), keepdims=keepdims)


def all_(x, axis=None, keepdims=False):
    return np.all(x, _axis(x, axis), keepdims=keepdims)


KERNELS = {
    "sum": sum_,
    "mean": mean,
    "prod": prod,
    "max": max_,
    "min": min_,
    "var": var,
    "std": std,
    "argmax": _arg(np.argmax),
    "argmin": _arg(np.argmin),
    "logsumexp": logsumexp,
    "cumsum": cumsum,
    "any": any_,
    "all": all_,
}
