"""Input pipelines (``unidl.data.Dataset``), and what ``fit``/``evaluate``/``predict`` accept.

A :class:`Dataset` is built from arrays (:meth:`Dataset.from_tensor_slices`) or a generator
(:meth:`Dataset.from_generator`) and transformed with ``batch``, ``shuffle``, ``map``,
``filter``, ``repeat``, ``take``, ``skip``, ``cache`` and ``prefetch``, as ``tf.data``. Its
elements stay host NumPy arrays inside the pipeline and become the active backend's tensors
when it is iterated. :mod:`unidl.data.adapters` turns everything a model is fed (arrays, a
Dataset, a generator, a sequence of batches, any iterable of batches such as a
``DataLoader`` or a ``tf.data.Dataset``) into batches of the backend's tensors. See
docs/data.md.

Example:
    >>> import numpy as np
    >>> import unidl
    >>> from unidl.data import AUTOTUNE, Dataset
    >>> x, y = np.arange(20, dtype="float32").reshape(10, 2), np.arange(10) % 2
    >>> ds = (Dataset.from_tensor_slices((x, y)).shuffle(10, seed=0)
    ...       .map(lambda x, y: (x / 20.0, y), num_parallel_calls=AUTOTUNE)
    ...       .batch(4).prefetch(AUTOTUNE))
    >>> ds.cardinality()
    3
    >>> with unidl.use_backend("numpy"):
    ...     [tuple(xb.shape) for xb, yb in ds]
    [(4, 2), (4, 2), (2, 2)]
"""

from unidl.data.dataset import AUTOTUNE, INFINITE, UNKNOWN, Dataset
from unidl.data.parallel import MapDataset, PrefetchDataset
from unidl.data.sources import GeneratorDataset, TensorSlicesDataset
from unidl.data.transforms import (
    BatchDataset,
    CacheDataset,
    FilterDataset,
    RepeatDataset,
    ShuffleDataset,
    SkipDataset,
    TakeDataset,
)

__all__ = ["Dataset", "AUTOTUNE", "INFINITE", "UNKNOWN", "TensorSlicesDataset",
           "GeneratorDataset", "BatchDataset", "ShuffleDataset", "MapDataset", "FilterDataset",
           "RepeatDataset", "TakeDataset", "SkipDataset", "CacheDataset", "PrefetchDataset"]
