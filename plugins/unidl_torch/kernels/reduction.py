"""PyTorch reduction kernels.

Torch widens integer sums and products to int64: the kernels ask for the input dtype
instead (bool sums to int32). float16/bfloat16 sums, means, variances and logsumexp
accumulate in float32. A reduction over no axis (a 0-d input, or ``axis=()``) reduces a
trailing size-1 axis, since torch reads ``dim=()`` as "every axis".
"""

from __future__ import annotations

import math
import warnings

import torch

from unidl.spec.rules import normalize_axes

_HALF = (torch.float16, torch.bfloat16)


def _dims(x, axis):
    return normalize_axes(axis, x.dim())


def _acc(x):
    if x.dtype == torch.bool:
        return torch.int32
    if x.dtype in _HALF:
        return torch.float32
    return x.dtype


def _back(r, x):
    return r.to(x.dtype) if x.dtype in _HALF else r


def _reduce(fn, x, axis, keepdims, **kw):
    dims = _dims(x, axis)
    if not dims:
        return fn(x.unsqueeze(-1), dim=-1, keepdim=False, **kw)
    return fn(x, dim=dims, keepdim=keepdims, **kw)


def sum_(x, axis=None, keepdims=False):
    if axis is None and not keepdims and x.dim():  # (every axis: torch's own fast path)
        return _back(torch.sum(x, dtype=_acc(x)), x)
    return _back(_reduce(torch.sum, x, axis, keepdims, dtype=_acc(x)), x)


def prod(x, axis=None, keepdims=False):
    dims = _dims(x, axis)
    acc = _acc(x)
    if not dims:
        return _back(x.to(acc), x)
    if len(dims) == 1:
        return _back(torch.prod(x, dims[0], keepdim=keepdims, dtype=acc), x)
    kept = [i for i in range(x.dim()) if i not in dims]
    shape = x.shape
    n = math.prod(shape[i] for i in dims)
    y = x.permute(kept + list(dims)).reshape([shape[i] for i in kept] + [n])
    r = torch.prod(y, -1, dtype=acc)
    if keepdims:
        r = r.reshape([1 if i in dims else d for i, d in enumerate(shape)])
    return _back(r, x)


def mean(x, axis=None, keepdims=False):
    if axis is None and not keepdims and x.dim() and x.dtype.is_floating_point and \
            x.dtype not in _HALF:  # (every axis: torch's own fast path, ~3x less overhead)
        return torch.mean(x)
    if x.dtype in _HALF:
        return _reduce(torch.mean, x, axis, keepdims, dtype=torch.float32).to(x.dtype)
    return _reduce(torch.mean, x, axis, keepdims)


def _moment(fn, x, axis, keepdims, ddof):
    xf = x.float() if x.dtype in _HALF else x
    count = math.prod(x.shape[d] for d in _dims(x, axis)) if x.dim() else 1
    if count - ddof > 0 and x.numel() > 0:
        return _back(_reduce(fn, xf, axis, keepdims, correction=ddof), x)
    with warnings.catch_warnings():  # no degrees of freedom left: inf/NaN, as documented
        warnings.simplefilter("ignore", UserWarning)
        return _back(_reduce(fn, xf, axis, keepdims, correction=ddof), x)


def var(x, axis=None, keepdims=False, ddof=0):
    return _moment(torch.var, x, axis, keepdims, ddof)


def std(x, axis=None, keepdims=False, ddof=0):
    return _moment(torch.std, x, axis, keepdims, ddof)


def max_(x, axis=None, keepdims=False):
    return _reduce(torch.amax, x, axis, keepdims)


def min_(x, axis=None, keepdims=False):
    return _reduce(torch.amin, x, axis, keepdims)


def _arg(fn):
    def kernel(x, axis=None, keepdims=False):
        if x.dtype == torch.bool:
            x = x.to(torch.uint8)
        if axis is None:
            r = fn(x.reshape(-1))
            return r.reshape((1,) * x.dim()) if keepdims else r
        return fn(x, dim=axis, keepdim=keepdims)

    return kernel


def logsumexp(x, axis=None, keepdims=False):
    xf = x.float() if x.dtype in _HALF else x
    return _back(_reduce(torch.logsumexp, xf, axis, keepdims), x)


def cumsum(x, axis=None):
    if axis is None:
        x2, axis = x.reshape(-1), 0
    else:
        x2 = x if x.dim() else x.reshape(1)
    return _back(torch.cumsum(x2, axis, dtype=_acc(x)), x)


def _logical(fn):
    def kernel(x, axis=None, keepdims=False):
        r = _reduce(fn, x, axis, keepdims)
        return r if r.dtype == torch.bool else r.to(torch.bool)

    return kernel


KERNELS = {
    "sum": sum_,
    "mean": mean,
    "prod": prod,
    "max": max_,
    "min": min_,
    "var": var,
    "std": std,
    "argmax": _arg(torch.argmax),
    "argmin": _arg(torch.argmin),
    "logsumexp": logsumexp,
    "cumsum": cumsum,
    "any": _logical(torch.any),
    "all": _logical(torch.all),
}
