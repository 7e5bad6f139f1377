"""JAX creation kernels (``dtype`` arrives resolved to a unidl dtype name).

Every array is made with an explicit dtype (``jax_enable_x64`` is on: JAX's own defaults
would be 64-bit). Eager results go on the current unidl device (``unidl.device`` or
``UNIDL_DEVICE``); ``*_like`` ops follow ``x``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from unidl import dtypes as _dt
from unidl.backend.state import STATE


def _nd(dtype):
    return np.dtype(_dt.numpy_dtype(dtype))


def _shape(shape):
    if isinstance(shape, (int, np.integer)):
        return (int(shape),)
    return tuple(int(d) for d in shape)


def _placed(arr):
    """``arr`` on the current unidl device (eager arrays only: a traced one stays put)."""
    if STATE.device and not isinstance(arr, jax.core.Tracer):
        from unidl_jax.backend import jax_device  # (imported late: backend loads the kernels)

        return jax.device_put(arr, jax_device(STATE.device))
    return arr


def _fill_value(fill_value, nd):
    """``fill_value`` converted to ``nd`` as ``cast`` does (floats truncate toward zero for
    integer dtypes, integers wrap around, anything nonzero is True)."""
    if isinstance(fill_value, jax.Array):
        return fill_value.astype(nd)
    return np.asarray(fill_value).astype(nd)


def zeros(shape, dtype):
    return _placed(jnp.zeros(_shape(shape), _nd(dtype)))


def ones(shape, dtype):
    return _placed(jnp.ones(_shape(shape), _nd(dtype)))


def full(shape, fill_value, dtype):
    nd = _nd(dtype)
    return _placed(jnp.full(_shape(shape), _fill_value(fill_value, nd), nd))


def zeros_like(x, dtype):
    return jnp.zeros_like(x, _nd(dtype))


def ones_like(x, dtype):
    return jnp.ones_like(x, _nd(dtype))


def full_like(x, fill_value, dtype):
    nd = _nd(dtype)
    return jnp.full_like(x, _fill_value(fill_value, nd), nd)


def arange(start, stop, step, dtype):
    if stop is None:
        start, stop = 0, start
    ints = all(isinstance(v, (int, np.integer)) for v in (start, stop, step))
    wide = jnp.arange(start, stop, step, dtype=np.int64 if ints else np.float64)
    return _placed(wide.astype(_nd(dtype)))  # 64-bit values, then converted (floats truncate)


def linspace(start, stop, num, endpoint, dtype):
    y = jnp.linspace(float(start), float(stop), int(num), endpoint=bool(endpoint),
                     dtype=np.float64)
    if _dt.is_int(dtype):
        y = jnp.floor(y)
    return _placed(y.astype(_nd(dtype)))


def eye(n, m, k, dtype):
    return _placed(jnp.eye(int(n), None if m is None else int(m), int(k), dtype=_nd(dtype)))


def cast(x, dtype):
    return x.astype(_nd(dtype))


KERNELS = {
    "zeros": zeros, "ones": ones, "full": full,
    "zeros_like": zeros_like, "ones_like": ones_like, "full_like": full_like,
    "arange": arange, "linspace": linspace, "eye": eye,
    "cast": cast, "stop_gradient": jax.lax.stop_gradient,
}
