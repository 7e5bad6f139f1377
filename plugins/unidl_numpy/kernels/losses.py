"""NumPy loss kernels (Keras 3 semantics; see ``unidl/spec/losses.py``).

Half-precision inputs are computed in float32 and the result cast back.
"""

from __future__ import annotations

import numpy as np

from unidl_numpy import saved

EPSILON = 1e-7
_F32 = np.dtype(np.float32)


def _up(x):
    """``(x as a float array fit for the math, result dtype)``."""
    dt = x.dtype
    if dt.kind != "f" or dt.itemsize < 4:
        if dt.kind != "f" and dt.name != "bfloat16":
            dt = _F32
        return x.astype(_F32), dt
    return x, dt


def _log_softmax(z, ax):
    # (array methods rather than the np.* wrappers: the same reductions, less call overhead)
    m = z.max(axis=ax, keepdims=True)
    if not np.isfinite(m).all():
        m = np.where(np.isfinite(m), m, 0)
    s = z - m
    return s - np.log(np.exp(s).sum(axis=ax, keepdims=True))


def _log_probs(x, from_logits, ax):
    if from_logits:
        return _log_softmax(x, ax)
    p = x / np.sum(x, axis=ax, keepdims=True)
    return np.log(np.clip(p, EPSILON, 1.0 - EPSILON))


def _log_softmax_keeping(z):
    """``_log_softmax(z, 1)`` of a 2-D float32/64 ``z``, and the softmax the gradient kernel
    computes (``e / sum(e)``, the same operations), or None where ``z``'s row maxima are not
    all finite (there the two differ)."""
    m = z.max(axis=1, keepdims=True)
    if not np.isfinite(m).all():
        return _log_softmax(z, 1), None
    s = z - m
    e = np.exp(s)
    total = e.sum(axis=1, keepdims=True)
    return s - np.log(total), np.divide(e, total, out=e)


def sparse_categorical_crossentropy(target, output, from_logits=False, axis=-1):
    x, dt = _up(output)
    ax = axis % x.ndim
    if target.ndim == x.ndim:
        target = np.squeeze(target, ax)
    if from_logits and x.ndim == 2 and ax == 1 and x is output and saved.wanted():
        lp, probs = _log_softmax_keeping(x)
        out = -lp[np.arange(lp.shape[0]), target.astype(np.intp, copy=False)]
        if probs is not None:  # (for the gradient kernel, ``unidl_numpy.grad_kernels``)
            saved.put("sparse_categorical_crossentropy", out, probs)
        return out
    lp = _log_probs(x, from_logits, ax)
    if lp.ndim == 2 and ax == 1:  # (batch, classes): pick one entry per row
        out = -lp[np.arange(lp.shape[0]), target.astype(np.intp, copy=False)]
        return out.astype(dt, copy=False)
    idx = np.expand_dims(target.astype(np.intp, copy=False), ax)
    out = -np.squeeze(np.take_along_axis(lp, idx, axis=ax), ax)
    return out.astype(dt, copy=False)


def categorical_crossentropy(target, output, from_logits=False, axis=-1):
    x, dt = _up(output)
    ax = axis % x.ndim
    out = -np.sum(target * _log_probs(x, from_logits, ax), axis=ax)
    return out.astype(dt, copy=False)


def binary_crossentropy(target, output, from_logits=False):
    z, dt = _up(output)
    t = target.astype(z.dtype, copy=False)
    if from_logits:
        per = np.maximum(z, 0) - z * t + np.log1p(np.exp(-np.abs(z)))
    else:
        c = np.clip(z, EPSILON, 1.0 - EPSILON)
        c1 = np.clip(1 - z, EPSILON, 1.0 - EPSILON)  # = 1 - c, without rounding 1 - eps
        per = -(t * np.log(c) + (1 - t) * np.log(c1))
    return np.mean(per, axis=-1).astype(dt, copy=False)


def mean_squared_error(y_true, y_pred):
    y, dt = _up(y_pred)
    d = y - y_true.astype(y.dtype, copy=False)
    return np.mean(d * d, axis=-1).astype(dt, copy=False)


KERNELS = {
    "sparse_categorical_crossentropy": sparse_categorical_crossentropy,
    "categorical_crossentropy": categorical_crossentropy,
    "binary_crossentropy": binary_crossentropy,
    "mean_squared_error": mean_squared_error,
}
