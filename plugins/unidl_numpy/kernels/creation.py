"""NumPy creation kernels (``dtype`` arrives resolved to a unidl dtype name)."""

from __future__ import annotations

import numpy as np

from unidl import dtypes as _dt

_nd = _dt.numpy_dtype


def _shape(shape):
    return (int(shape),) if isinstance(shape, (int, np.integer)) else tuple(int(d) for d in shape)


def zeros(shape, dtype):
    return np.zeros(_shape(shape), _nd(dtype))


def ones(shape, dtype):
    return np.ones(_shape(shape), _nd(dtype))


def full(shape, fill_value, dtype):
    return np.full(_shape(shape), np.asarray(fill_value).astype(_nd(dtype)), _nd(dtype))


def zeros_like(x, dtype):
    return np.zeros(x.shape, _nd(dtype))


def ones_like(x, dtype):
    return np.ones(x.shape, _nd(dtype))


def full_like(x, fill_value, dtype):
    return full(x.shape, fill_value, dtype)


def _from_float64(values, dtype):
    if _dt.is_int(dtype):
        values = np.floor(values)
    return values.astype(_nd(dtype), copy=False)


def arange(start, stop, step, dtype):
    if stop is None:
        start, stop = 0, start
    ints = all(isinstance(v, (int, np.integer)) for v in (start, stop, step))
    out = np.arange(start, stop, step, dtype=np.int64 if ints else np.float64)
    return out.astype(_nd(dtype), copy=False)


def linspace(start, stop, num, endpoint, dtype):
    return _from_float64(np.linspace(start, stop, int(num), endpoint=endpoint, dtype=np.float64),
                         dtype)


def eye(n, m, k, dtype):
    return np.eye(int(n), None if m is None else int(m), int(k), dtype=_nd(dtype))


def cast(x, dtype):
    return x.astype(_nd(dtype))


def stop_gradient(x):
    return x


KERNELS = {
    "zeros": zeros, "ones": ones, "full": full,
    "zeros_like": zeros_like, "ones_like": ones_like, "full_like": full_like,
    "arange": arange, "linspace": linspace, "eye": eye,
    "cast": cast, "stop_gradient": stop_gradient,
}
