"""The logits behind a softmax output, for the cross-entropy losses.

A classifier usually ends in ``softmax`` and is trained with a cross-entropy on its
probabilities (``from_logits=False``). Computed as written, that is a softmax, a
normalization, a clip to ``[1e-7, 1 - 1e-7]`` and a log: several kernels, and a gradient
that the clip sets to zero for confidently wrong predictions. When the probabilities come
straight from :func:`unidl.activations.softmax` (a ``Dense(..., activation="softmax")`` or
``Activation("softmax")`` layer), the losses use the logits instead: one fused
log-softmax cross-entropy, exact where the clipped form saturates. Keras 3 does the same on
TensorFlow (``_keras_logits``); unidl does it on every backend, so they stay comparable.

Only the most recent softmax outputs are remembered (by identity, a few at a time); any op
applied to the probabilities (a cast, a slice) gives a new tensor, which then uses the
probability form.

Example:
    >>> import unidl
    >>> from unidl import activations, ops
    >>> from unidl.logits import softmax_logits
    >>> with unidl.use_backend("numpy"):
    ...     z = ops.convert_to_tensor([[2.0, -1.0]])
    ...     p = activations.softmax(z)
    ...     ops.to_numpy(softmax_logits(p, -1)).tolist(), softmax_logits(ops.add(p, 0.0), -1)
    ([[2.0, -1.0]], None)
"""

from __future__ import annotations

import weakref

__all__ = ["remember_softmax", "softmax_logits"]

_KEEP = 8  # (outputs remembered: a model's output and a few more)
_RECENT: dict = {}  # id(probabilities) -> (weakref to them or the object, logits, axis)


def remember_softmax(probabilities, logits, axis) -> None:
    """Record that ``probabilities`` is ``softmax(logits, axis)``."""
    try:
        ref = weakref.ref(probabilities)
    except TypeError:  # (a type without weak references: kept alive while remembered)
        ref = _strong(probabilities)
    _RECENT[id(probabilities)] = (ref, logits, axis)
    while len(_RECENT) > _KEEP:
        del _RECENT[next(iter(_RECENT))]


def softmax_logits(probabilities, axis):
    """The logits ``probabilities`` was computed from by a softmax over ``axis``, or None."""
    entry = _RECENT.get(id(probabilities))
    if entry is None or entry[0]() is not probabilities:
        return None
    _, logits, along = entry
    rank = len(getattr(probabilities, "shape", ()))
    if rank == 0 or along % rank != axis % rank:
        return None
    return logits


def _strong(value):
    return lambda: value
