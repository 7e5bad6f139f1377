"""How a layer with a mixed dtype policy runs (``Layer.__call__`` calls :func:`autocast_call`).

While the layer's ``call`` runs:

* its floating-point inputs (the first argument and the other positional arguments) are cast
  to the policy's compute dtype;
* every trainable float weight of the layer and of its nested layers reads as its value cast
  to the compute dtype (the cast is part of the computation, so gradients flow back to the
  float32 Variable in float32); non-trainable state (BatchNormalization's moving statistics)
  keeps its own dtype;
* a nested layer with another policy (``Dense(10, dtype="float32")`` inside a mixed model)
  reads the same weights in its own compute dtype again: from the float32 value, not from
  the low-precision copy.

A layer whose ``activation`` is ``softmax`` or ``log_softmax`` (``Dense(10,
activation="softmax")``, ``Activation("softmax")``) applies it in float32 and returns float32:
the gradient of a cross-entropy with respect to the probabilities (``-y / p``) is far beyond
float16's range for small ``p``, so it must not flow through float16. A model
(``unidl.Model``, ``Sequential``, functional) with a mixed policy returns its floating-point
outputs in its variable dtype (float32), so the loss, the metrics and ``predict`` see float32.

Example:
    >>> import unidl
    >>> from unidl import layers, ops
    >>> with unidl.use_backend("numpy"):
    ...     dense = layers.Dense(2, dtype="mixed_float16")
    ...     y = dense(ops.ones((1, 3)))
    ...     ops.dtype(y), dense.kernel.dtype
    ('float16', 'float32')
"""

from __future__ import annotations

from unidl import dtypes as _dt
from unidl import ops, tree
from unidl.layers.base import AUTOCAST_SWAPS

__all__ = ["autocast_call", "cast_floats"]

_MODEL_TYPES: list = []


def _is_model(layer) -> bool:
    if not _MODEL_TYPES:
        from unidl.models.training import TrainingMixin

        _MODEL_TYPES.append(TrainingMixin)
    return isinstance(layer, _MODEL_TYPES[0])


def _cast_leaf(x, dtype):
    if ops.is_tensor(x):
        d = ops.dtype(x)
        if d != dtype and _dt.is_float(d):
            return ops.cast(x, dtype)
    return x


def cast_floats(structure, dtype):
    """``structure`` (a tensor or nested lists, tuples and dicts) with every floating-point
    tensor cast to ``dtype``; other leaves are unchanged.

    Example:
        >>> import unidl
        >>> from unidl import ops
        >>> from unidl.mixed_precision.autocast import cast_floats
        >>> with unidl.use_backend("numpy"):
        ...     a, b = cast_floats([ops.ones((2,)), ops.convert_to_tensor([1, 2])], "float16")
        ...     ops.dtype(a), ops.dtype(b)
        ('float16', 'int32')
    """
    if structure is None or ops.is_tensor(structure):
        return _cast_leaf(structure, dtype)
    leaves, treedef = tree.flatten(structure)
    return tree.unflatten(treedef, [_cast_leaf(x, dtype) for x in leaves])


def _swap_weights(layer, dtype) -> list:
    """Make the trainable float weights of ``layer`` (nested layers included) read as
    ``dtype``; returns what :func:`_restore` needs."""
    swapped = []
    for w in layer._all_weights(None):
        wdt = w.dtype
        if not w.trainable or not _dt.is_float(wdt):
            continue
        key = id(w)
        entry = AUTOCAST_SWAPS.get(key)
        if entry is None:
            if wdt == dtype:
                continue
            base = w.__unidl_tensor__()
        else:
            base, now = entry
            if now == dtype:
                continue
        new = base if wdt == dtype else ops.cast(base, dtype)
        swapped.append((w, w._unidl_swap(new), entry))
        AUTOCAST_SWAPS[key] = (base, dtype)
    return swapped


def _restore(swapped) -> None:
    for w, old, entry in reversed(swapped):
        w._unidl_swap(old)
        if entry is None:
            AUTOCAST_SWAPS.pop(id(w), None)
        else:
            AUTOCAST_SWAPS[id(w)] = entry


_WIDE_ACTIVATIONS: dict = {}  # softmax, log_softmax -> the same in float32


def _wide_activation(layer):
    """The float32 version of ``layer.activation`` when it is softmax or log_softmax."""
    if not _WIDE_ACTIVATIONS:
        from unidl import activations

        for fn in (activations.softmax, activations.log_softmax):
            def wide(x, *args, _fn=fn, **kwargs):
                return _fn(_cast_leaf(x, "float32"), *args, **kwargs)

            _WIDE_ACTIVATIONS[fn] = wide
    act = layer.__dict__.get("activation")
    return _WIDE_ACTIVATIONS.get(act) if callable(act) else None


def autocast_call(layer, inputs, args, kwargs):
    """``layer.call(inputs, *args, **kwargs)`` under the layer's dtype policy (see the
    module docstring); used by ``Layer.__call__`` when the layer has a mixed policy or runs
    inside a layer that has one."""
    dtype = layer.compute_dtype
    if not _dt.is_float(dtype):  # (an integer layer inside a mixed model: as it is)
        return layer.call(inputs, *args, **kwargs)
    wide = _wide_activation(layer) if layer._autocast is not None else None
    swapped = _swap_weights(layer, dtype)
    try:
        inputs = cast_floats(inputs, dtype)
        if args:
            args = tuple(cast_floats(a, dtype) for a in args)
        if wide is None:
            outputs = layer.call(inputs, *args, **kwargs)
        else:
            act = layer.activation
            object.__setattr__(layer, "activation", wide)
            try:
                outputs = layer.call(inputs, *args, **kwargs)
            finally:
                object.__setattr__(layer, "activation", act)
    finally:
        _restore(swapped)
    if layer._autocast is not None and _is_model(layer):
        outputs = cast_floats(outputs, layer.dtype)
    return outputs
