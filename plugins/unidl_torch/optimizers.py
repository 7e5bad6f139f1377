"""Fused optimizer kernels for PyTorch: the same updates as unidl's optimizers (and as
``torch.optim``'s ``foreach`` implementations), done with ``torch._foreach_*`` ops on all
variables at once instead of a handful of ops per variable.

A kernel receives the optimizer (for its hyperparameters), the Variables, their gradients
(native tensors, already clipped), their slot Variables, the learning rate and the step
number (native 0-d tensors) and which variables take weight decay. It returns False when it
cannot handle the case, and the optimizer then runs its generic update.
"""

from __future__ import annotations

import math

import torch

__all__ = ["OPTIMIZER_KERNELS"]


def _storages(variables):
    return [v.storage for v in variables]


def _same_device(tensors):
    return len({t.device for t in tensors}) <= 1


def _scalar(x):
    """The learning rate or step number (a 0-d tensor) as a Python float, except inside
    ``torch.compile``: there a float would be baked into the graph as a constant, and dynamo
    would recompile at every step (until its recompile limit, then run eagerly); a tensor
    keeps one graph for every step."""
    return x if torch.compiler.is_compiling() else float(x)


def _add_scaled_(params, updates, scale):
    """``params += scale * updates`` for a float or a 0-d tensor ``scale``."""
    if isinstance(scale, torch.Tensor):
        updates = torch._foreach_mul(updates, scale)
        torch._foreach_add_(params, updates)
    else:
        torch._foreach_add_(params, updates, alpha=scale)


def _coupled_decay(opt, params, grads, decay):
    wd = opt.weight_decay
    if not wd or not opt._coupled_decay:
        return grads
    return [torch.add(g, p, alpha=wd) if d else g for g, p, d in zip(grads, params, decay)]


@torch.no_grad()
def adam(opt, variables, grads, slots, lr, step, decay):
    """Adam / AdamW: ``m = b1 m + (1-b1) g``, ``v = b2 v + (1-b2) g^2``,
    ``p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)`` (see unidl.optimizers.Adam)."""
    params = _storages(variables)
    if not _same_device(params):
        return False
    lr, t = _scalar(lr), _scalar(step)
    b1, b2, eps = opt.beta_1, opt.beta_2, opt.epsilon
    grads = _coupled_decay(opt, params, list(grads), decay)
    if opt.weight_decay and not opt._coupled_decay:
        shrink = [p for p, d in zip(params, decay) if d]
        if shrink:
            torch._foreach_mul_(shrink, 1.0 - lr * opt.weight_decay)
    m = [s[0].storage for s in slots]
    v = [s[1].storage for s in slots]
    torch._foreach_lerp_(m, grads, 1.0 - b1)
    torch._foreach_mul_(v, b2)
    torch._foreach_addcmul_(v, grads, grads, 1.0 - b2)
    if opt.amsgrad:
        vmax = [s[2].storage for s in slots]
        torch._foreach_maximum_(vmax, v)
        v = vmax
    denom = torch._foreach_sqrt(v)
    if isinstance(t, torch.Tensor):  # (inside torch.compile: see _scalar)
        torch._foreach_div_(denom, torch.sqrt(1.0 - b2 ** t))
        torch._foreach_add_(denom, eps)
        _add_scaled_(params, torch._foreach_div(m, denom), -lr / (1.0 - b1 ** t))
        return True
    torch._foreach_div_(denom, math.sqrt(1.0 - b2 ** t))
    torch._foreach_add_(denom, eps)
    torch._foreach_addcdiv_(params, m, denom, value=-lr / (1.0 - b1 ** t))
    return True


@torch.no_grad()
def sgd(opt, variables, grads, slots, lr, step, decay):
    """SGD with optional (Nesterov) momentum, as unidl.optimizers.SGD / torch.optim.SGD."""
    params = _storages(variables)
    if not _same_device(params):
        return False
    lr = _scalar(lr)
    grads = _coupled_decay(opt, params, list(grads), decay)
    if opt.momentum > 0:
        bufs = [s[0].storage for s in slots]
        torch._foreach_mul_(bufs, opt.momentum)
        torch._foreach_add_(bufs, grads)
        if opt.nesterov:
            direction = torch._foreach_add(grads, bufs, alpha=opt.momentum)
        else:
            direction = bufs
    else:
        direction = grads
    _add_scaled_(params, direction, -lr)
    return True


OPTIMIZER_KERNELS = {"adam": adam, "sgd": sgd}
