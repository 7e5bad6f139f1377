"""JAX reduction kernels.

Integer sums and products stay in the input dtype (``jnp`` would widen them); bool sums to
int32. float16/bfloat16 sums, means, variances, cumulative sums and logsumexp accumulate in
float32 and round once at the end. Index results are int64.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from unidl.spec.rules import normalize_axes

_HALF = (jnp.dtype(jnp.float16), jnp.dtype(jnp.bfloat16))


def _axis(x, axis):
    return None if axis is None else normalize_axes(axis, x.ndim)


def _acc(x):
    """The dtype ``x`` is summed or multiplied in."""
    if x.dtype == jnp.bool_:
        return jnp.int32
    if x.dtype in _HALF:
        return jnp.float32
    return x.dtype


def _wide(x):
    return x.astype(jnp.float32) if x.dtype in _HALF else x


def _back(r, x):
    return r.astype(x.dtype) if x.dtype in _HALF else r


def sum_(x, axis=None, keepdims=False):
    return _back(jnp.sum(x, _axis(x, axis), dtype=_acc(x), keepdims=keepdims), x)


def prod(x, axis=None, keepdims=False):
    return _back(jnp.prod(x, _axis(x, axis), dtype=_acc(x), keepdims=keepdims), x)


def mean(x, axis=None, keepdims=False):
    return _back(jnp.mean(_wide(x), _axis(x, axis), keepdims=keepdims), x)


def var(x, axis=None, keepdims=False, ddof=0):
    return _back(jnp.var(_wide(x), _axis(x, axis), ddof=ddof, keepdims=keepdims), x)


def std(x, axis=None, keepdims=False, ddof=0):
    """``sqrt(var)``; where the variance is 0 the gradient is 0 (the spec's rule), not NaN."""
    v = jnp.var(_wide(x), _axis(x, axis), ddof=ddof, keepdims=keepdims)
    pos = v > 0
    return _back(jnp.where(pos, jnp.sqrt(jnp.where(pos, v, 1)), v), x)


def max_(x, axis=None, keepdims=False):
    return jnp.max(x, _axis(x, axis), keepdims=keepdims)


def min_(x, axis=None, keepdims=False):
    return jnp.min(x, _axis(x, axis), keepdims=keepdims)


def _arg(fn):
    def kernel(x, axis=None, keepdims=False):
        if axis is None:
            r = fn(x.reshape(-1))
            return r.reshape((1,) * x.ndim if keepdims else ()).astype(jnp.int64)
        return fn(x, axis=axis, keepdims=keepdims).astype(jnp.int64)

    return kernel


def logsumexp(x, axis=None, keepdims=False):
    """``log(sum(exp(x - m))) + m`` with ``m`` the largest finite maximum (0 if none), held
    constant for the gradient (which is then the softmax exactly); empty: ``-inf``."""
    ax = _axis(x, axis)
    xf = _wide(x)
    m = jnp.max(xf, ax, keepdims=True, initial=-jnp.inf)
    m = jax.lax.stop_gradient(jnp.where(jnp.isfinite(m), m, jnp.zeros((), xf.dtype)))
    out = jnp.log(jnp.sum(jnp.exp(xf - m), ax, keepdims=True)) + m
    if not keepdims:
        out = out.reshape(()) if ax is None else jnp.squeeze(out, ax)
    return _back(out, x)


def cumsum(x, axis=None):
    if axis is None:
        x2, axis = x.reshape(-1), 0
    else:
        x2 = x if x.ndim else x.reshape(1)
    return _back(jnp.cumsum(x2, axis, dtype=_acc(x)), x)


def _logical(fn):
    def kernel(x, axis=None, keepdims=False):
        truth = x if x.dtype == jnp.bool_ else x != 0  # (NaN is true)
        return fn(truth, _axis(x, axis), keepdims=keepdims)

    return kernel


KERNELS = {
    "sum": sum_,
    "mean": mean,
    "prod": prod,
    "max": max_,
    "min": min_,
    "var": var,
    "std": std,
    "argmax": _arg(jnp.argmax),
    "argmin": _arg(jnp.argmin),
    "logsumexp": logsumexp,
    "cumsum": cumsum,
    "any": _logical(jnp.any),
    "all": _logical(jnp.all),
}
