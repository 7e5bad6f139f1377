"""``Dataset``: the base class of every pipeline stage, and what the stages share.

A pipeline is a chain of small datasets, each holding the one upstream it transforms. Inside
the chain an element is a structure (an array, or tuples and dicts of arrays) of host NumPy
arrays; iterating the last stage converts each element to the active backend's tensors, on
its current device, once.

Each stage implements ``_open(seeds)``: it returns an iterator over its host elements and
draws nothing from :mod:`unidl.random` (the one seed a pipeline needs is drawn when the
iteration starts, in the iterating thread; see :class:`Seeds`), so background threads
(:meth:`Dataset.prefetch`, :meth:`Dataset.map`) never race the model for random numbers.
"""

from __future__ import annotations

import contextlib
import os

import numpy as np

from unidl import tree

__all__ = ["Dataset", "AUTOTUNE", "INFINITE", "UNKNOWN"]

#: ``num_parallel_calls`` / ``prefetch`` size chosen by unidl (as ``tf.data.AUTOTUNE``)
AUTOTUNE = -1
#: :meth:`Dataset.cardinality` of an endless dataset (as ``tf.data.INFINITE_CARDINALITY``)
INFINITE = -1
#: :meth:`Dataset.cardinality` when the number of elements is not known in advance
UNKNOWN = -2


class Dataset:
    """A pipeline of host NumPy elements, iterated as the active backend's tensors.

    Build one with :meth:`from_tensor_slices` or :meth:`from_generator` and chain
    transformations; each returns a new dataset (the original is unchanged). Iterating
    yields each element as the active backend's tensors on its current device (arrays of
    strings or bytes stay NumPy); :meth:`as_numpy_iterator` yields the host arrays.
    ``model.fit``, ``evaluate`` and ``predict`` take a dataset of ``(x, y[, sample_weight])``
    batches directly.

    Example:
        >>> import numpy as np
        >>> from unidl.data import Dataset
        >>> ds = Dataset.from_tensor_slices((np.arange(6), np.arange(6) * 10))
        >>> ds = ds.map(lambda x, y: (x * 2, y)).filter(lambda x, y: x > 0).batch(2)
        >>> [(x.tolist(), y.tolist()) for x, y in ds.as_numpy_iterator()]
        [([2, 4], [10, 20]), ([6, 8], [30, 40]), ([10], [50])]
        >>> ds.cardinality()  # unknown: filter may drop any number of elements
        -2
    """

    #: the stage this one transforms (None for a source)
    upstream: Dataset | None = None

    # -- sources --------------------------------------------------------------------------
    @staticmethod
    def from_tensor_slices(tensors) -> Dataset:
        """One element per row of ``tensors`` (see :class:`~unidl.data.TensorSlicesDataset`)."""
        from unidl.data.sources import TensorSlicesDataset

        return TensorSlicesDataset(tensors)

    @staticmethod
    def from_generator(generator, args=None) -> Dataset:
        """The elements ``generator(*args)`` yields, anew on each pass (see
        :class:`~unidl.data.GeneratorDataset`)."""
        from unidl.data.sources import GeneratorDataset

        return GeneratorDataset(generator, args)

    # -- transformations --------------------------------------------------------------------
    def batch(self, batch_size, drop_remainder=False) -> Dataset:
        """Stack ``batch_size`` consecutive elements (:class:`~unidl.data.BatchDataset`)."""
        from unidl.data.transforms import BatchDataset

        return BatchDataset(self, batch_size, drop_remainder)

    def shuffle(self, buffer_size, seed=None, reshuffle_each_iteration=True) -> Dataset:
        """Shuffle through a buffer of ``buffer_size`` elements
        (:class:`~unidl.data.ShuffleDataset`)."""
        from unidl.data.transforms import ShuffleDataset

        return ShuffleDataset(self, buffer_size, seed, reshuffle_each_iteration)

    def map(self, fn, num_parallel_calls=None) -> Dataset:
        """``fn`` applied to each element, on threads if asked (:class:`~unidl.data.MapDataset`)."""
        from unidl.data.parallel import MapDataset

        return MapDataset(self, fn, num_parallel_calls)

    def filter(self, predicate) -> Dataset:
        """The elements for which ``predicate`` is true (:class:`~unidl.data.FilterDataset`)."""
        from unidl.data.transforms import FilterDataset

        return FilterDataset(self, predicate)

    def repeat(self, count=None) -> Dataset:
        """``count`` passes (forever for None) (:class:`~unidl.data.RepeatDataset`)."""
        from unidl.data.transforms import RepeatDataset

        return RepeatDataset(self, count)

    def take(self, count) -> Dataset:
        """The first ``count`` elements (:class:`~unidl.data.TakeDataset`)."""
        from unidl.data.transforms import TakeDataset

        return TakeDataset(self, count)

    def skip(self, count) -> Dataset:
        """All but the first ``count`` elements (:class:`~unidl.data.SkipDataset`)."""
        from unidl.data.transforms import SkipDataset

        return SkipDataset(self, count)

    def cache(self) -> Dataset:
        """Keep the elements in memory after the first full pass
        (:class:`~unidl.data.CacheDataset`)."""
        from unidl.data.transforms import CacheDataset

        return CacheDataset(self)

    def prefetch(self, buffer_size) -> Dataset:
        """Prepare up to ``buffer_size`` elements on a background thread
        (:class:`~unidl.data.PrefetchDataset`)."""
        from unidl.data.parallel import PrefetchDataset

        return PrefetchDataset(self, buffer_size)

    # -- size -----------------------------------------------------------------------------
    def cardinality(self) -> int:
        """The number of elements: an int, :data:`INFINITE` (-1) or :data:`UNKNOWN` (-2)."""
        return UNKNOWN

    def __len__(self) -> int:
        n = self.cardinality()
        if n == INFINITE:
            raise TypeError("the dataset is infinite (repeat() without a count); it has no len()")
        if n == UNKNOWN:
            raise TypeError("the length of the dataset is unknown (it comes from a generator or "
                            "a filter); count it with sum(1 for _ in ds) if it is finite")
        return n

    # -- iteration ------------------------------------------------------------------------
    def as_numpy_iterator(self):
        """The elements as host NumPy structures (a new pass each call).

        Example:
            >>> import numpy as np
            >>> from unidl.data import Dataset
            >>> [int(v) for v in Dataset.from_tensor_slices(np.arange(3)).as_numpy_iterator()]
            [0, 1, 2]
        """
        return self._open(Seeds.draw(self))

    def __iter__(self):
        """The elements as the active backend's tensors on its current device."""
        return _to_backend(self._open(Seeds.draw(self)))

    def _open(self, seeds: Seeds):
        """An iterator over this stage's host elements (stages override it)."""
        raise NotImplementedError

    def _needs_seed(self) -> bool:
        """Whether some stage draws its randomness from the pipeline's seed."""
        return self.upstream is not None and self.upstream._needs_seed()

    @property
    def _depth(self) -> int:
        return 0 if self.upstream is None else self.upstream._depth + 1

    def __repr__(self):
        n = self.cardinality()
        size = {INFINITE: "infinite", UNKNOWN: "unknown"}.get(n, str(n))
        return f"<{type(self).__name__} cardinality={size}>"


class Seeds:
    """Where a pipeline's random stages get their generators. One base seed is drawn from
    :mod:`unidl.random` when an iteration starts (only if some stage needs one), in the
    iterating thread; each stage then derives its generator from ``(base, its depth, the
    pass numbers of the repeats above it)``, a pure function, so the order of draws never
    depends on thread timing and deterministic mode gives the same order everywhere."""

    __slots__ = ("base", "path")

    def __init__(self, base, path=()):
        self.base, self.path = base, tuple(path)

    @classmethod
    def draw(cls, dataset) -> Seeds:
        if not dataset._needs_seed():
            return cls(None)
        from unidl import random as urandom

        return cls(urandom.next_seed())

    def child(self, n) -> Seeds:
        """The seeds of pass ``n`` of a repeated upstream."""
        return Seeds(self.base, self.path + (n,))

    def generator(self, depth) -> np.random.Generator:
        return np.random.default_rng(np.random.SeedSequence(self.base, spawn_key=(
            depth, *self.path)))


# -- elements -------------------------------------------------------------------------------
def to_host(value):
    """``value`` (a structure of arrays, backend tensors, scalars) as host NumPy arrays."""
    if isinstance(value, np.ndarray):
        return value
    if value.__class__ is tuple and all(isinstance(v, _HOST) for v in value):
        return value  # (the common (x, y) element, kept fast)
    if isinstance(value, (tuple, list, dict)):
        return tree.map_structure(_host_leaf, value)
    return _host_leaf(value)


_HOST = (np.ndarray, np.generic)


def _host_leaf(value):
    if isinstance(value, _HOST):
        return value
    from unidl import ops

    return np.asarray(ops.to_numpy(value))


def call(fn, element):
    """``fn(*element)`` for a tuple element (as ``tf.data``), else ``fn(element)``."""
    if isinstance(element, tuple) and not hasattr(element, "_fields"):
        return fn(*element)
    return fn(element)


def _to_backend(elements):
    """The host elements as the active backend's tensors (strings and bytes stay NumPy)."""
    from unidl import ops

    def convert(leaf):
        arr = np.asarray(leaf)
        if arr.dtype.kind not in "biufc":
            return leaf
        if not arr.flags.writeable:  # (a cached element: frameworks want writable memory)
            arr = arr.copy()
        return ops.convert_to_tensor(arr)

    with contextlib.closing(elements) if hasattr(elements, "close") else \
            contextlib.nullcontext():
        for element in elements:
            yield tree.map_structure(convert, element) if isinstance(
                element, (tuple, list, dict)) else convert(element)


# -- threads ------------------------------------------------------------------------------------
def cpu_count() -> int:
    """The CPUs this process may run on (what :data:`AUTOTUNE` uses)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # (not on every OS)
        return max(1, os.cpu_count() or 1)


def thread_context():
    """A function entering, in a new thread, the iterating thread's backend and device, so
    that ``map`` functions written with unidl ops run where the consumer runs them."""
    from unidl.backend.state import STATE, backend_name, device, use_backend

    name, dev = backend_name(), STATE.device

    def enter(stack: contextlib.ExitStack):
        stack.enter_context(use_backend(name))
        if dev is not None:
            stack.enter_context(device(dev))

    return enter


def background_allowed() -> bool:
    """Threads run pipeline stages except in deterministic mode: there ``map`` functions
    that draw from :mod:`unidl.random` (augmentation layers) must draw in a fixed order
    relative to the model's own draws, so every stage runs in the iterating thread."""
    from unidl import random as urandom

    return not urandom.is_deterministic()
