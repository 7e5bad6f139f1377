"""Where a pipeline's elements come from: arrays in memory, or a Python generator."""

from __future__ import annotations

import numpy as np

from unidl import tree
from unidl.data.dataset import UNKNOWN, Dataset, to_host

__all__ = ["TensorSlicesDataset", "GeneratorDataset"]


def _named(name, data):
    """``(name, leaf)`` pairs in :func:`unidl.tree.flatten`'s order (tuples and dicts are
    structures; anything else is one array, a list included, as ``tf.data`` reads it)."""
    if isinstance(data, tuple):
        return [leaf for i, d in enumerate(data) for leaf in _named(f"{name}[{i}]", d)]
    if isinstance(data, dict):
        return [leaf for k in sorted(data) for leaf in _named(f"{name}[{k!r}]", data[k])]
    return [(name, data)]


def _slice_source(name, value):
    if isinstance(value, list):
        try:
            return np.asarray(value)
        except ValueError:
            raise ValueError(f"Dataset.from_tensor_slices: {name} is a list of arrays of "
                             "different shapes; a list is read as ONE array (as tf.data "
                             "does): pass a tuple for several arrays") from None
    arr = to_host(value)
    if arr.ndim == 0:
        raise ValueError(f"Dataset.from_tensor_slices: {name} is a scalar ({arr!r}); each "
                         "array needs a first axis to slice")
    return arr


class TensorSlicesDataset(Dataset):
    """One element per index of the first axis of ``tensors``: an array, or a tuple or dict
    (nested) of arrays of equal length. NumPy arrays and any backend's tensors are accepted
    and kept on the host as NumPy (a NumPy array is not copied: elements are views of it,
    so change neither while iterating). A list is one array, as in ``tf.data``.

    Example:
        >>> import numpy as np
        >>> from unidl.data import Dataset
        >>> ds = Dataset.from_tensor_slices({"a": np.arange(3), "b": np.ones((3, 2))})
        >>> ds.cardinality()
        3
        >>> first = next(ds.as_numpy_iterator())
        >>> int(first["a"]), first["b"].shape
        (0, (2,))
    """

    def __init__(self, tensors):
        named = _named("tensors", tensors)
        arrays = [_slice_source(name, value) for name, value in named]
        lengths = {len(a) for a in arrays}
        if len(lengths) > 1:
            got = ", ".join(f"{name} has {len(a)}" for (name, _), a in zip(named, arrays))
            raise ValueError("Dataset.from_tensor_slices: every array must have the same length "
                             f"(first axis); got: {got}")
        self.arrays = arrays
        self.treedef = tree.flatten(tensors if isinstance(tensors, (tuple, dict))
                                    else np.zeros(0))[1]
        self.n = lengths.pop()

    def cardinality(self) -> int:
        return self.n

    def slices(self, start, stop):
        """Elements ``start:stop`` already stacked (copies: :class:`BatchDataset`'s path)."""
        return tree.unflatten(self.treedef, [a[start:stop].copy() for a in self.arrays]) \
            if self.treedef is not None else self.arrays[0][start:stop].copy()

    def _open(self, seeds):
        if self.treedef is None:
            return iter(self.arrays[0])
        if self.treedef[0] is tuple and all(t is None for t in self.treedef[1]):
            return zip(*self.arrays)  # (a flat tuple: the common (x, y) case, kept fast)
        return (tree.unflatten(self.treedef, leaves) for leaves in zip(*self.arrays))


class GeneratorDataset(Dataset):
    """The elements ``generator(*args)`` yields, each converted to host NumPy arrays (tuples
    and dicts of them). ``generator`` is called anew for every pass, so the dataset can be
    iterated again (``repeat``, several epochs); its length is unknown.

    Example:
        >>> from unidl.data import Dataset
        >>> def squares(n):
        ...     for i in range(n):
        ...         yield i, i * i
        >>> ds = Dataset.from_generator(squares, args=(4,)).batch(2)
        >>> [y.tolist() for _, y in ds.as_numpy_iterator()]
        [[0, 1], [4, 9]]
    """

    def __init__(self, generator, args=None):
        if not callable(generator):
            raise TypeError("Dataset.from_generator needs a callable that returns a new "
                            f"iterator on each call (a generator function), got a "
                            f"{type(generator).__name__}; wrap a one-shot iterator `it` as "
                            "`lambda: it` only if you iterate the dataset once")
        self.generator = generator
        self.args = tuple(args or ())

    def cardinality(self) -> int:
        return UNKNOWN

    def _open(self, seeds):
        return (to_host(element) for element in self.generator(*self.args))
