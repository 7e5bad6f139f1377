"""Fused optimizer kernels for NumPy: the updates of unidl's optimizers, done in place.

The generic update (``unidl.optimizers``) makes a new array for every op and then copies it
into the variable; these kernels apply the same float operations, in the same order and in
the same dtype, with ``out=`` buffers, so the results are bitwise the same. The step scalars
(bias corrections, learning rate, decay factor) and the constants are the optimizer's own
(``_step_scalars``, ``_consts``), computed by the same ops as the generic path.

A kernel returns False for a case it does not handle (variables of a dtype other than the
optimizer's scalar dtype), and the optimizer then runs its generic update.
"""

from __future__ import annotations

import numpy as np

__all__ = ["OPTIMIZER_KERNELS"]


def _prepare(opt, variables, grads, decay):
    """The storages and gradients (coupled L2 added, in new arrays), or None."""
    sdt = opt._sdt
    if any(v.dtype != sdt for v in variables):
        return None
    params = [v.storage for v in variables]
    c = opt._consts(sdt, "cpu")
    if opt.weight_decay and opt._coupled_decay:
        # as the generic path: g = g + p * weight_decay (a new array: g may be the caller's)
        grads = [np.add(g, np.multiply(p, c.weight_decay)) if d else g
                 for g, p, d in zip(grads, params, decay)]
    return params, grads, c


def adam(opt, variables, grads, slots, lr, step, decay):
    """Adam / AdamW (see unidl.optimizers.Adam), in place."""
    prep = _prepare(opt, variables, grads, decay)
    if prep is None:
        return False
    params, grads, c = prep
    step_size, sqrt_bc2, factor = opt._step_scalars(lr, step)
    decoupled = not opt._coupled_decay
    for p, g, s, d in zip(params, grads, slots, decay):
        m, v = s[0].storage, s[1].storage
        tmp = np.multiply(g, c.one_b1, out=np.empty(p.shape, p.dtype))  # (0-d: an array)
        np.multiply(m, c.b1, out=m)
        np.add(m, tmp, out=m)                     # m = m * b1 + g * (1 - b1)
        np.square(g, out=tmp)
        np.multiply(tmp, c.one_b2, out=tmp)
        np.multiply(v, c.b2, out=v)
        np.add(v, tmp, out=v)                     # v = v * b2 + g**2 * (1 - b2)
        if opt.amsgrad:
            vmax = s[2].storage
            np.maximum(vmax, v, out=vmax)
            v = vmax
        denom = np.sqrt(v, out=np.empty(p.shape, p.dtype))
        np.divide(denom, sqrt_bc2, out=denom)
        np.add(denom, c.eps, out=denom)           # sqrt(v) / sqrt(1 - b2**t) + eps
        if decoupled and d and factor is not None:
            np.multiply(p, factor, out=p)         # AdamW: p = p * (1 - lr * wd)
        np.multiply(m, step_size, out=tmp)
        np.divide(tmp, denom, out=tmp)
        np.subtract(p, tmp, out=p)                # p = p - m * step / denom
    return True


def sgd(opt, variables, grads, slots, lr, step, decay):
    """SGD with optional (Nesterov) momentum (see unidl.optimizers.SGD), in place."""
    prep = _prepare(opt, variables, grads, decay)
    if prep is None:
        return False
    params, grads, c = prep
    (lr,) = opt._step_scalars(lr, step)
    for p, g, s in zip(params, grads, slots):
        if s:
            buf = s[0].storage
            np.multiply(buf, c.momentum, out=buf)
            np.add(buf, g, out=buf)               # b = b * momentum + g
            if opt.nesterov:
                d = np.multiply(buf, c.momentum, out=np.empty(p.shape, p.dtype))
                np.add(g, d, out=d)               # d = g + b * momentum
            else:
                d = buf
        else:
            d = g
        np.subtract(p, np.multiply(d, lr, out=np.empty(p.shape, p.dtype)), out=p)  # p - d lr
    return True


OPTIMIZER_KERNELS = {"adam": adam, "sgd": sgd}
