"""PyTorch loss kernels (Keras 3 semantics; see ``unidl/spec/losses.py``).

The from-logits paths use the fused ``F.cross_entropy`` / ``F.binary_cross_entropy_with_logits``
with ``reduction='none'``; half-precision inputs are computed in float32 and cast back.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

EPSILON = 1e-7
_HALF = (torch.float16, torch.bfloat16)


def _up(x):
    dt = x.dtype
    if dt in _HALF:
        return x.float(), dt
    if not x.is_floating_point():
        return x.float(), torch.float32
    return x, dt


def _down(out, dt):
    return out if out.dtype == dt else out.to(dt)


def _class_first(x, ax):
    """Move the class axis to where torch expects it (1, or 0 for unbatched inputs)."""
    if x.ndim == 1 or ax == 1:
        return x
    return torch.movedim(x, ax, 1)


def _log_probs_from_probs(x, ax):
    p = x / x.sum(dim=ax, keepdim=True)
    return torch.log(torch.clamp(p, EPSILON, 1.0 - EPSILON))


#: no label is ignored: torch's default ``ignore_index=-100`` gave -100 a loss of 0 instead
#: of the out-of-range error every other label gets
_NO_IGNORE = -(2 ** 63)


def sparse_categorical_crossentropy(target, output, from_logits=False, axis=-1):
    return _sparse_cce(target, output, from_logits, axis, "none")


def mean_sparse_categorical_crossentropy(target, output, from_logits=False, axis=-1):
    """The batch mean reduced inside ``cross_entropy``/``nll_loss`` (one kernel)."""
    return _sparse_cce(target, output, from_logits, axis, "mean")


def _sparse_cce(target, output, from_logits, axis, reduction):
    x, dt = _up(output)
    ax = axis % x.ndim
    if target.ndim == x.ndim:
        target = target.squeeze(ax)
    if target.dtype != torch.int64:
        target = target.long()
    if from_logits:
        out = F.cross_entropy(_class_first(x, ax), target, reduction=reduction,
                              ignore_index=_NO_IGNORE)
    else:
        out = F.nll_loss(_class_first(_log_probs_from_probs(x, ax), ax), target,
                         reduction=reduction, ignore_index=_NO_IGNORE)
    return _down(out, dt)


def categorical_crossentropy(target, output, from_logits=False, axis=-1):
    x, dt = _up(output)
    t = target.to(x.dtype) if target.dtype != x.dtype else target
    ax = axis % x.ndim
    if from_logits:
        out = F.cross_entropy(_class_first(x, ax), _class_first(t, ax), reduction="none")
    else:
        out = -(t * _log_probs_from_probs(x, ax)).sum(dim=ax)
    return _down(out, dt)


def binary_crossentropy(target, output, from_logits=False):
    z, dt = _up(output)
    t = target.to(z.dtype) if target.dtype != z.dtype else target
    if from_logits:
        per = F.binary_cross_entropy_with_logits(z, t, reduction="none")
    else:
        c = torch.clamp(z, EPSILON, 1.0 - EPSILON)
        c1 = torch.clamp(1.0 - z, EPSILON, 1.0 - EPSILON)  # = 1 - c, without rounding 1 - eps
        per = -(t * torch.log(c) + (1.0 - t) * torch.log(c1))
    return _down(per.mean(dim=-1), dt)


def mean_squared_error(y_true, y_pred):
    y, dt = _up(y_pred)
    d = y - (y_true.to(y.dtype) if y_true.dtype != y.dtype else y_true)
    return _down(torch.square(d).mean(dim=-1), dt)


KERNELS = {
    "sparse_categorical_crossentropy": sparse_categorical_crossentropy,
    "mean_sparse_categorical_crossentropy": mean_sparse_categorical_crossentropy,
    "categorical_crossentropy": categorical_crossentropy,
    "binary_crossentropy": binary_crossentropy,
    "mean_squared_error": mean_squared_error,
}
