"""Fused optimizer kernels for JAX: the update of every variable in one ``jax.jit`` call.

Eagerly, unidl's generic update dispatches a handful of ops per variable; here one compiled
function takes all parameters, gradients and slots and returns their new values. Inside a
compiled step (``unidl_jax.compile``) the call is simply part of the trace. The kernels take
the common cases (no weight decay, no AMSGrad, one float dtype) and return False for the
rest, which the optimizer's generic update then handles.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp

__all__ = ["OPTIMIZER_KERNELS"]


@partial(jax.jit, static_argnames=("b1", "b2", "eps"))
def _adam_update(params, grads, m, v, lr, t, b1, b2, eps):
    dt = params[0].dtype
    lr, t = lr.astype(dt), t.astype(dt)
    step = lr / (1.0 - b1 ** t)
    sqrt_bc2 = jnp.sqrt(1.0 - b2 ** t)
    m = [b1 * mi + (1.0 - b1) * g for mi, g in zip(m, grads)]
    v = [b2 * vi + (1.0 - b2) * jnp.square(g) for vi, g in zip(v, grads)]
    params = [p - step * mi / (jnp.sqrt(vi) / sqrt_bc2 + eps)
              for p, mi, vi in zip(params, m, v)]
    return params, m, v


@partial(jax.jit, static_argnames=("momentum", "nesterov"))
def _sgd_update(params, grads, bufs, lr, momentum, nesterov):
    lr = lr.astype(params[0].dtype)
    if momentum > 0:
        bufs = [momentum * b + g for b, g in zip(bufs, grads)]
        direction = [g + momentum * b for g, b in zip(grads, bufs)] if nesterov else bufs
    else:
        direction = grads
    return [p - lr * d for p, d in zip(params, direction)], bufs


def _one_float_dtype(variables) -> bool:
    dtypes = {v.dtype for v in variables}
    return len(dtypes) == 1 and dtypes <= {"float32", "float64"}


def _assign(variables, values):
    for var, value in zip(variables, values):
        var._assign_native(value)


def adam(opt, variables, grads, slots, lr, step, decay):
    """Adam as :class:`unidl.optimizers.Adam` (plain case: no decay, no AMSGrad)."""
    if opt.weight_decay or opt.amsgrad or not _one_float_dtype(variables):
        return False
    m_vars, v_vars = [s[0] for s in slots], [s[1] for s in slots]
    params, m, v = _adam_update([x.value for x in variables], list(grads),
                                [s.value for s in m_vars], [s.value for s in v_vars], lr, step,
                                b1=opt.beta_1, b2=opt.beta_2, eps=opt.epsilon)
    _assign(variables, params)
    _assign(m_vars, m)
    _assign(v_vars, v)
    return True


def sgd(opt, variables, grads, slots, lr, step, decay):
    """SGD with optional (Nesterov) momentum, as :class:`unidl.optimizers.SGD`."""
    if opt.weight_decay or not _one_float_dtype(variables):
        return False
    bufs = [s[0] for s in slots] if opt.momentum > 0 else []
    params, new_bufs = _sgd_update([x.value for x in variables], list(grads),
                                   [b.value for b in bufs], lr, momentum=opt.momentum,
                                   nesterov=bool(opt.nesterov))
    _assign(variables, params)
    _assign(bufs, new_bufs)
    return True


OPTIMIZER_KERNELS = {"adam": adam, "sgd": sgd}
