"""JAX recurrent kernels: ``lstm`` and ``gru``, each one ``jax.lax.scan`` over time.

The input projections of every step are one matmul over the whole sequence; the scan then
carries the states through the recurrent matmul and the gate equations of the spec
(``unidl/spec/rnn.py``, ``unidl/spec/gru.py``: Keras layouts, LSTM gates ``i, f, c, o``, GRU
gates ``z, r, h`` with ``reset_after`` either way). Masks, ``go_backwards`` and
``return_sequences`` are the layers' business: the ops run every step forwards and return
the whole sequence and the final states. Each kernel is one ``jax.jit`` function (one program
per eager call; JAX differentiates the scan), half precision computed in float32 and rounded
once.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax

from unidl.spec.gru import gru_shapes
from unidl.spec.rnn import lstm_shapes

_HALF = (jnp.float16, jnp.bfloat16)


def _in_float32(fn):
    """Run ``fn`` on float32 copies of half-precision tensors; round its outputs back."""

    @functools.wraps(fn)
    def kernel(x, *rest, **static):
        if x.dtype not in _HALF:
            return fn(x, *rest, **static)
        rest = [None if r is None else r.astype(jnp.float32) for r in rest]
        return tuple(y.astype(x.dtype) for y in fn(x.astype(jnp.float32), *rest, **static))

    return kernel


def _over_time(step, carry, xs):
    """``lax.scan`` of ``step`` along axis 1 of ``xs`` (batch, time, .); the per-step
    outputs come back batch-major."""
    carry, ys = lax.scan(step, carry, jnp.swapaxes(xs, 0, 1))
    return carry, jnp.swapaxes(ys, 0, 1)


@_in_float32
@jax.jit
def _lstm(x, h0, c0, kernel, recurrent_kernel, bias):
    xz = jnp.matmul(x, kernel)
    if bias is not None:
        xz = xz + bias

    def step(carry, xz_t):
        h, c = carry
        i, f, g, o = jnp.split(xz_t + jnp.matmul(h, recurrent_kernel), 4, axis=-1)
        c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
        h = jax.nn.sigmoid(o) * jnp.tanh(c)
        return (h, c), h

    (h, c), outputs = _over_time(step, (h0, c0), xz)
    return outputs, h, c


def lstm(x, h0, c0, kernel, recurrent_kernel, bias=None):
    lstm_shapes(x.shape, h0.shape, c0.shape, kernel.shape, recurrent_kernel.shape,
                None if bias is None else bias.shape)
    return _lstm(x, h0, c0, kernel, recurrent_kernel, bias)


@_in_float32
@functools.partial(jax.jit, static_argnames="reset_after")
def _gru(x, h0, kernel, recurrent_kernel, bias, *, reset_after):
    u = h0.shape[-1]
    b_in = b_rec = None
    if bias is not None:
        b_in, b_rec = (bias[0], bias[1]) if reset_after else (bias, None)
    xp = jnp.matmul(x, kernel)
    if b_in is not None:
        xp = xp + b_in

    def step(h, xp_t):
        x_zr, x_h = xp_t[:, :2 * u], xp_t[:, 2 * u:]
        if reset_after:
            hp = jnp.matmul(h, recurrent_kernel)
            if b_rec is not None:
                hp = hp + b_rec
            z, r = jnp.split(jax.nn.sigmoid(x_zr + hp[:, :2 * u]), 2, axis=-1)
            n = jnp.tanh(x_h + r * hp[:, 2 * u:])
        else:
            zr = jax.nn.sigmoid(x_zr + jnp.matmul(h, recurrent_kernel[:, :2 * u]))
            z, r = jnp.split(zr, 2, axis=-1)
            n = jnp.tanh(x_h + jnp.matmul(r * h, recurrent_kernel[:, 2 * u:]))
        h = n + z * (h - n)  # z h + (1 - z) n
        return h, h

    h, outputs = _over_time(step, h0, xp)
    return outputs, h


def gru(x, h0, kernel, recurrent_kernel, bias=None, reset_after=True):
    gru_shapes(x.shape, h0.shape, kernel.shape, recurrent_kernel.shape,
               None if bias is None else bias.shape, reset_after)
    return _gru(x, h0, kernel, recurrent_kernel, bias, reset_after=bool(reset_after))


KERNELS = {
    "lstm": lstm,
    "gru": gru,
}
