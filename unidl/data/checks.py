"""The checks every piece of training data passes before it reaches a model: numeric, with a
batch axis, and of one length per batch (or per array set); plus ``class_weight``.

A failure is a ValueError naming where it happened (``fit``, ``evaluate: batch 3``), the
argument (``y``, ``x[1]``, ``validation_data[0]``) and what was wrong, with a hint.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from unidl import ops, tree

__all__ = ["host_data", "host_leaf", "named_leaves", "num_samples", "class_weights",
           "check_class_weight", "non_numeric"]

NUMERIC_KINDS = frozenset("biufc")  # bool, int, uint, float, complex
_KIND_WORDS = {"U": "strings", "S": "bytes", "O": "Python objects", "V": "raw records",
               "M": "datetimes", "m": "timedeltas"}
_TARGETS = ("y", "validation_data[1]")


def named_leaves(name, data):
    """``(name, array)`` for each array of ``data``, in :func:`unidl.tree.flatten`'s order:
    ``x``; ``x[0]``, ``x[1]`` for lists and tuples; ``x['a']`` for dicts."""
    if isinstance(data, (list, tuple)):
        return [leaf for i, d in enumerate(data) for leaf in named_leaves(f"{name}[{i}]", d)]
    if isinstance(data, dict):
        return [leaf for k in sorted(data) for leaf in named_leaves(f"{name}[{k!r}]", data[k])]
    return [] if data is None else [(name, data)]


def non_numeric(where, name, dtype, target) -> ValueError:
    what = _KIND_WORDS.get(dtype.kind, "non-numeric values")
    if target:
        hint = ("encode labels as integers, e.g. `classes, y = np.unique(y, "
                "return_inverse=True)` (classes[i] is the name of label i)")
    else:
        hint = ("convert it to numbers first, e.g. categories to integer codes with "
                "`np.unique(column, return_inverse=True)`")
    if dtype.kind == "O":
        hint += "; if it holds numbers, convert it with `.astype('float32')`"
    return ValueError(f"{where}: {name} has dtype {dtype} ({what}); unidl trains on numeric "
                      f"arrays only: {hint}")


def host_leaf(where, arg, name, value):
    """``value`` as a host NumPy array, checked to be numeric and to have a batch axis."""
    if isinstance(value, np.ndarray):
        arr = value
    elif ops.is_tensor(value):
        arr = np.asarray(ops.to_numpy(value))
    else:
        try:
            arr = np.asarray(ops.to_numpy(value))
        except ValueError as exc:  # ragged nested sequences
            raise ValueError(f"{where}: {name} is not a rectangular array ({exc}); pass "
                             "a NumPy array with one row per sample") from None
    if arr.dtype.kind not in NUMERIC_KINDS:
        raise non_numeric(where, name, arr.dtype, arg in _TARGETS)
    if arr.ndim == 0:
        raise ValueError(f"{where}: {name} is a scalar ({arr!r}); expected an array whose "
                         "first axis indexes the samples (a Python list is read as one array "
                         "per model input or output: pass np.asarray(...) for one array)")
    return arr


def host_data(where, **named):
    """The named data structures (``x=``, ``y=``, ``sample_weight=``; None allowed) as host
    NumPy arrays of one structure each, after checking every array is numeric and all have
    the same number of samples. The first one (the inputs) must hold data. A ValueError
    names the argument and its dtype, or every argument with its length."""
    out, lengths = {}, []
    for arg, data in named.items():
        if isinstance(data, (list, tuple, dict)):
            leaves = named_leaves(arg, data)
            arrays = [host_leaf(where, arg, name, value) for name, value in leaves]
            out[arg] = tree.unflatten(tree.flatten(data)[1], arrays)
            lengths += [(name, len(a)) for (name, _), a in zip(leaves, arrays)]
        elif data is not None:  # (one array: the common case, kept short)
            out[arg] = host_leaf(where, arg, arg, data)
            lengths.append((arg, len(out[arg])))
        else:
            out[arg] = None
        if not lengths:
            raise ValueError(f"{where}: no input data ({arg} is {data!r})")
    check_lengths(where, lengths)
    return out


def check_lengths(where, lengths):
    """``lengths``: ``(name, number of samples)`` pairs, which must all agree."""
    if len({n for _, n in lengths}) > 1:
        got = ", ".join(f"{name} has {n}" for name, n in lengths)
        raise ValueError(f"{where}: all inputs, targets and sample weights must have the same "
                         f"number of samples (length of the first axis); got: {got}")


def num_samples(data) -> int:
    return len(tree.flatten(data)[0][0])


def check_class_weight(where, class_weight):
    """``class_weight`` as a dict ``{int class: float weight}``."""
    if not isinstance(class_weight, Mapping):
        raise ValueError(f"{where}: class_weight must be a dict {{class index: weight}}, got "
                         f"a {type(class_weight).__name__}")
    try:
        return {int(k): float(v) for k, v in class_weight.items()}
    except (TypeError, ValueError):
        raise ValueError(f"{where}: class_weight must map integer class indices to numbers, "
                         f"got {class_weight!r}") from None


def class_weights(where, class_weight, y) -> np.ndarray:
    """Per-sample weights (float32, one per row of ``y``) from ``{class: weight}``: ``y``
    holds integer labels, ``(n,)`` or ``(n, 1)``, or one-hot rows ``(n, classes)`` (the
    class is the argmax), as Keras. Every class present must have a weight."""
    if isinstance(y, (list, tuple, dict)):
        raise ValueError(f"{where}: class_weight needs one array of labels (a model with one "
                         f"output); y has {len(tree.flatten(y)[0])} arrays: give per-sample "
                         "weights as sample_weight instead")
    labels = np.asarray(ops.to_numpy(y))
    if labels.ndim > 2:
        raise ValueError(f"{where}: class_weight needs labels of shape (n,), (n, 1) or one-hot "
                         f"(n, classes); y has shape {labels.shape}")
    if labels.ndim == 2:
        labels = labels[:, 0] if labels.shape[1] == 1 else labels.argmax(axis=1)
    labels = np.round(labels).astype(np.int64)
    classes, index = np.unique(labels, return_inverse=True)
    missing = [int(c) for c in classes if int(c) not in class_weight]
    if missing:
        raise ValueError(f"{where}: class_weight has no weight for class {missing[0]} (a label "
                         f"in y); give every class a weight: its keys are "
                         f"{sorted(class_weight)}, the labels include {classes.tolist()[:20]}")
    table = np.array([class_weight[int(c)] for c in classes], np.float32)
    return table[index.reshape(-1)]
