"""The transformations that run in the iterating thread: batch, shuffle, filter, repeat,
take, skip and cache (``map`` and ``prefetch`` may use threads: :mod:`unidl.data.parallel`).

Each stage closes its upstream iterator when it stops early or is abandoned, so background
threads further up stop too.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import threading

import numpy as np

from unidl import tree
from unidl.data.dataset import INFINITE, UNKNOWN, Dataset, call, to_host
from unidl.data.sources import TensorSlicesDataset

__all__ = ["BatchDataset", "ShuffleDataset", "FilterDataset", "RepeatDataset", "TakeDataset",
           "SkipDataset", "CacheDataset"]


def _count(where, name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"Dataset.{where}: {name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def closing(iterator):
    """Close ``iterator`` (a generator) when the block ends, however it ends."""
    return contextlib.closing(iterator) if hasattr(iterator, "close") else \
        contextlib.nullcontext(iterator)


class BatchDataset(Dataset):
    """Consecutive elements stacked along a new first axis, ``batch_size`` at a time; the
    last batch is smaller unless ``drop_remainder``. Every element must have the same
    structure and shapes (a ValueError names the batch and the shapes otherwise).

    Example:
        >>> import numpy as np
        >>> from unidl.data import Dataset
        >>> ds = Dataset.from_tensor_slices(np.arange(5)).batch(2)
        >>> [b.tolist() for b in ds.as_numpy_iterator()], ds.cardinality()
        ([[0, 1], [2, 3], [4]], 3)
        >>> Dataset.from_tensor_slices(np.arange(5)).batch(2, drop_remainder=True).cardinality()
        2
    """

    def __init__(self, upstream, batch_size, drop_remainder=False):
        self.upstream = upstream
        self.batch_size = _count("batch", "batch_size", batch_size, 1)
        self.drop_remainder = bool(drop_remainder)

    def cardinality(self) -> int:
        n = self.upstream.cardinality()
        if n < 0:
            return n
        return n // self.batch_size if self.drop_remainder else math.ceil(n / self.batch_size)

    def _open(self, seeds):
        if isinstance(self.upstream, TensorSlicesDataset):
            return self._slices(self.upstream)
        return self._stacked(self.upstream._open(seeds))

    def _slices(self, source):
        stop = source.n - source.n % self.batch_size if self.drop_remainder else source.n
        for start in range(0, stop, self.batch_size):
            yield source.slices(start, min(start + self.batch_size, stop))

    def _stacked(self, elements):
        with closing(elements):
            for index in itertools.count():
                group = list(itertools.islice(elements, self.batch_size))
                if not group or (self.drop_remainder and len(group) < self.batch_size):
                    return
                yield _stack(group, index)


def _stack(group, index):
    first = group[0]
    if isinstance(first, np.ndarray) or np.isscalar(first):
        return _stack_leaves(group, index, "")
    if first.__class__ is tuple and all(isinstance(v, _HOST) for v in first) and all(
            e.__class__ is tuple and len(e) == len(first) for e in group):
        # (flat tuples, the common (x, y) case: columns without flattening each element)
        return tuple(_stack_leaves(column, index, f" (leaf {i})")
                     for i, column in enumerate(zip(*group)))
    leaves, treedef = tree.flatten(first)
    columns = [[leaf] for leaf in leaves]
    for element in group[1:]:
        other, other_def = tree.flatten(element)
        if other_def != treedef:
            raise ValueError(f"Dataset.batch: batch {index} mixes elements of different "
                             f"structures: {_describe(first)} and {_describe(element)}")
        for column, leaf in zip(columns, other):
            column.append(leaf)
    return tree.unflatten(treedef, [_stack_leaves(c, index, f" (leaf {i})")
                                    for i, c in enumerate(columns)])


_HOST = (np.ndarray, np.generic)


def _stack_leaves(leaves, index, where):
    try:
        return np.stack(leaves)
    except ValueError:
        shapes = sorted({np.shape(leaf) for leaf in leaves})
        raise ValueError(f"Dataset.batch: batch {index}{where} mixes elements of shapes "
                         f"{', '.join(map(str, shapes))}; elements must share a shape to "
                         "be stacked (resize or pad them in a map first)") from None


def _describe(element):
    return repr(tree.map_structure(lambda leaf: f"{np.shape(leaf)}", element))


class ShuffleDataset(Dataset):
    """The upstream elements in random order through a buffer, as ``tf.data``: the buffer
    is filled with the first ``buffer_size`` elements, then each output is a random element
    of the buffer, replaced by the next upstream element. A buffer at least as large as the
    dataset gives a uniform shuffle; an element never comes out more than ``buffer_size - 1``
    places earlier than it went in.

    ``seed=None`` derives the order from :mod:`unidl.random` (so
    ``unidl.random.set_seed`` repeats it, on every backend); a ``seed`` fixes it. With
    ``reshuffle_each_iteration`` (the default) every pass has a new order.

    Example:
        >>> import numpy as np
        >>> from unidl.data import Dataset
        >>> def order(ds):
        ...     return [int(v) for v in ds.as_numpy_iterator()]
        >>> ds = Dataset.from_tensor_slices(np.arange(6)).shuffle(6, seed=1)
        >>> first, second = order(ds), order(ds)
        >>> sorted(first), first == second  # a new order on each pass
        ([0, 1, 2, 3, 4, 5], False)
        >>> first == order(Dataset.from_tensor_slices(np.arange(6)).shuffle(6, seed=1))
        True
    """

    def __init__(self, upstream, buffer_size, seed=None, reshuffle_each_iteration=True):
        self.upstream = upstream
        self.buffer_size = _count("shuffle", "buffer_size", buffer_size, 1)
        self.reshuffle = bool(reshuffle_each_iteration)
        if seed is None and not self.reshuffle:
            from unidl import random as urandom

            seed = urandom.next_seed()  # (drawn once: every pass the same order)
        self.seed = None if seed is None else int(seed)
        self._passes = itertools.count()

    def cardinality(self) -> int:
        return self.upstream.cardinality()

    def _needs_seed(self) -> bool:
        return self.seed is None or self.upstream._needs_seed()

    def _generator(self, seeds):
        if self.seed is None:
            return seeds.generator(self._depth)
        key = (next(self._passes),) if self.reshuffle else ()
        return np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=key))

    def _open(self, seeds):
        return self._shuffled(self.upstream._open(seeds), self._generator(seeds))

    def _shuffled(self, elements, rng):
        size, buffer = self.buffer_size, []
        uniforms, k = rng.random(1024), 0
        with closing(elements):
            for element in elements:
                if len(buffer) < size:
                    buffer.append(element)
                    continue
                if k == len(uniforms):
                    uniforms, k = rng.random(1024), 0
                j = int(uniforms[k] * size)
                k += 1
                out, buffer[j] = buffer[j], element
                yield out
        while buffer:
            if k == len(uniforms):
                uniforms, k = rng.random(1024), 0
            j = int(uniforms[k] * len(buffer))
            k += 1
            buffer[j], buffer[-1] = buffer[-1], buffer[j]
            yield buffer.pop()


def _truth(value, where):
    from unidl import ops

    arr = np.asarray(ops.to_numpy(value)) if not isinstance(value, (bool, np.bool_)) else value
    if np.ndim(arr) != 0:
        raise ValueError(f"Dataset.{where}: the predicate must return one boolean per element, "
                         f"got an array of shape {np.shape(arr)}")
    return bool(arr)


class FilterDataset(Dataset):
    """The elements for which ``predicate(element)`` is true (a tuple element is passed as
    positional arguments, as in ``tf.data``). The predicate may use NumPy or unidl ops and
    must return one boolean. The length becomes unknown.

    Example:
        >>> import numpy as np
        >>> from unidl.data import Dataset
        >>> ds = Dataset.from_tensor_slices(np.arange(10)).filter(lambda v: v % 3 == 0)
        >>> [int(v) for v in ds.as_numpy_iterator()]
        [0, 3, 6, 9]
    """

    def __init__(self, upstream, predicate):
        if not callable(predicate):
            raise TypeError(f"Dataset.filter needs a callable, got {type(predicate).__name__}")
        self.upstream, self.predicate = upstream, predicate

    def cardinality(self) -> int:
        return INFINITE if self.upstream.cardinality() == INFINITE else UNKNOWN

    def _open(self, seeds):
        return self._filtered(self.upstream._open(seeds))

    def _filtered(self, elements):
        with closing(elements):
            for element in elements:
                if _truth(call(self.predicate, element), "filter"):
                    yield element


class RepeatDataset(Dataset):
    """The upstream elements ``count`` times over (forever for ``None`` or -1). Each pass is
    a new pass of the upstream (a shuffle above reshuffles); a pass that yields nothing ends
    the repetition, so repeating an empty dataset does not loop forever.

    Example:
        >>> import numpy as np
        >>> from unidl.data import Dataset
        >>> ds = Dataset.from_tensor_slices(np.arange(3)).repeat(2)
        >>> [int(v) for v in ds.as_numpy_iterator()], ds.cardinality()
        ([0, 1, 2, 0, 1, 2], 6)
        >>> Dataset.from_tensor_slices(np.arange(3)).repeat().cardinality()  # INFINITE
        -1
    """

    def __init__(self, upstream, count=None):
        self.upstream = upstream
        self.count = -1 if count is None else _count("repeat", "count", count, -1)

    def cardinality(self) -> int:
        n = self.upstream.cardinality()
        if self.count < 0:
            return 0 if n == 0 else INFINITE
        if self.count == 0:
            return 0
        return n if n < 0 else n * self.count

    def _open(self, seeds):
        return self._repeated(seeds)

    def _repeated(self, seeds):
        passes = itertools.count() if self.count < 0 else range(self.count)
        for n in passes:
            empty = True
            with closing(self.upstream._open(seeds.child(n))) as elements:
                for element in elements:
                    empty = False
                    yield element
            if empty:
                return


class TakeDataset(Dataset):
    """The first ``count`` elements (all of them for -1).

    Example:
        >>> import numpy as np
        >>> from unidl.data import Dataset
        >>> ds = Dataset.from_tensor_slices(np.arange(10)).repeat().take(4)
        >>> [int(v) for v in ds.as_numpy_iterator()], ds.cardinality()
        ([0, 1, 2, 3], 4)
    """

    def __init__(self, upstream, count):
        self.upstream = upstream
        self.count = _count("take", "count", count, -1)

    def cardinality(self) -> int:
        n = self.upstream.cardinality()
        if self.count < 0 or n == UNKNOWN:
            return n
        return self.count if n == INFINITE else min(n, self.count)

    def _open(self, seeds):
        return self._taken(self.upstream._open(seeds))

    def _taken(self, elements):
        with closing(elements):
            yield from elements if self.count < 0 else itertools.islice(elements, self.count)


class SkipDataset(Dataset):
    """All but the first ``count`` elements (none for -1).

    Example:
        >>> import numpy as np
        >>> from unidl.data import Dataset
        >>> ds = Dataset.from_tensor_slices(np.arange(5)).skip(3)
        >>> [int(v) for v in ds.as_numpy_iterator()], ds.cardinality()
        ([3, 4], 2)
    """

    def __init__(self, upstream, count):
        self.upstream = upstream
        self.count = _count("skip", "count", count, -1)

    def cardinality(self) -> int:
        n = self.upstream.cardinality()
        if n < 0:
            return n
        return 0 if self.count < 0 else max(0, n - self.count)

    def _open(self, seeds):
        return self._skipped(self.upstream._open(seeds))

    def _skipped(self, elements):
        with closing(elements):
            if self.count < 0:
                for _ in elements:
                    pass
                return
            yield from itertools.islice(elements, self.count, None)


class CacheDataset(Dataset):
    """The upstream elements, kept in memory by the first pass that runs to the end; later
    passes read the memory (stages above the cache run once: a shuffle or a random
    augmentation above it is frozen, so put those after ``cache()``). A pass abandoned
    half-way keeps nothing. Cached arrays are read-only (a ``map`` below must return new
    arrays rather than modify its inputs). The upstream must be finite.

    Example:
        >>> import numpy as np
        >>> from unidl.data import Dataset
        >>> calls = []
        >>> ds = Dataset.from_tensor_slices(np.arange(3)).map(
        ...     lambda v: calls.append(int(v)) or v * 10).cache()
        >>> [int(v) for v in ds.as_numpy_iterator()], [int(v) for v in ds.as_numpy_iterator()]
        ([0, 10, 20], [0, 10, 20])
        >>> calls  # the map ran on the first pass only
        [0, 1, 2]
    """

    def __init__(self, upstream):
        if upstream.cardinality() == INFINITE:
            raise ValueError("Dataset.cache: the dataset is infinite, so the first pass would "
                             "never end; call cache() before repeat()")
        self.upstream = upstream
        self._elements = None
        self._lock = threading.Lock()

    def cardinality(self) -> int:
        return self.upstream.cardinality()

    def _needs_seed(self) -> bool:
        return self._elements is None and self.upstream._needs_seed()

    def _open(self, seeds):
        with self._lock:
            if self._elements is not None:
                return iter(self._elements)
        return self._filling(self.upstream._open(seeds))

    def _filling(self, elements):
        kept = []
        with closing(elements):
            for element in elements:
                element = tree.map_structure(_read_only, to_host(element)) if isinstance(
                    element, (tuple, list, dict)) else _read_only(element)
                kept.append(element)
                yield element
        with self._lock:
            if self._elements is None:
                self._elements = kept


def _read_only(leaf):
    if isinstance(leaf, np.ndarray):
        leaf = leaf.view()
        leaf.flags.writeable = False
    return leaf
