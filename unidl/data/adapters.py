"""What ``fit``, ``evaluate`` and ``predict`` accept, turned into batches ``(x, y, w)`` of the
active backend's tensors: one small adapter per kind of input, behind :func:`adapt`.

The kinds are told apart by what the object can do, never by its framework:

* **arrays**: NumPy arrays, anything with ``__array__`` (any framework's tensors), and
  lists, tuples and dicts of them (:class:`ArrayAdapter`: checked once, batched and
  shuffled on the host);
* a :class:`unidl.data.Dataset` (:class:`DatasetAdapter`: its host elements, converted once);
* a **sequence** of batches: ``__len__`` (or ``num_batches``, None for endless) and
  ``__getitem__(i)`` returning batch ``i``, as ``keras.utils.PyDataset``
  (:class:`SequenceAdapter`);
* any other **iterable** of batches (:class:`IterableAdapter`): a generator, a PyTorch
  ``DataLoader``, a ``tf.data.Dataset``. Its length is ``len()`` when it has one (a
  ``TypeError`` from ``len()`` means unknown, as ``tf.data`` raises for unknown or infinite
  lengths), and ``cardinality()`` when it has that (``-1`` infinite, as ``tf.data``).

A batch is ``(x, y[, sample_weight])`` (a list counts as a tuple; anything else is ``x``
alone), each a structure of arrays. A value that is already the active backend's tensor is
used as it is (cast to the model's float dtype, moved to the current device, never
copied otherwise); anything else goes through ``np.asarray`` (which PyTorch CPU tensors and
TensorFlow eager tensors support) and the same checks as arrays, naming the batch.
"""

from __future__ import annotations

import contextlib
import itertools
import math

import numpy as np

from unidl import ops, tree
from unidl.data.checks import (
    check_class_weight,
    check_lengths,
    class_weights,
    host_data,
    host_leaf,
    named_leaves,
    num_samples,
)
from unidl.data.dataset import INFINITE, UNKNOWN, Dataset

__all__ = ["adapt", "fit_inputs", "is_array_data", "ArrayAdapter", "DatasetAdapter",
           "SequenceAdapter", "IterableAdapter", "ran_out_message"]


# -- conversion ------------------------------------------------------------------------------
def to_model_tensor(x, float_dtype):
    """A host array as the backend's tensor; floats in the model's float dtype."""
    arr = np.asarray(x)
    return _converter(arr, float_dtype)(arr)


_HOST_DTYPES: dict = {}


def _host_dtype(name):
    """The NumPy dtype of a unidl float dtype name (cached: batches are converted often)."""
    got = _HOST_DTYPES.get(name)
    if got is None:
        from unidl import dtypes

        got = _HOST_DTYPES[name] = dtypes.numpy_dtype(dtypes.standardize(name))
    return got


def model_tensors(data, float_dtype):
    if isinstance(data, np.ndarray):
        return to_model_tensor(data, float_dtype)
    return tree.map_structure(lambda a: to_model_tensor(a, float_dtype), data)


def is_array_data(x) -> bool:
    """Whether ``x`` is data in memory rather than a source of batches: None, a scalar, a
    NumPy array, an object with ``__array__`` (framework tensors, pandas), a backend
    tensor, or a list, tuple or dict (of arrays)."""
    return (x is None or isinstance(x, (np.ndarray, np.generic, list, tuple, dict, str, bytes,
                                        int, float, complex))
            or hasattr(x, "__array__") or hasattr(x, "__array_interface__")
            or hasattr(x, "__unidl_tensor__") or ops.is_tensor(x))


# -- arrays ----------------------------------------------------------------------------------
class _Batches:
    """Host-side batching of checked host arrays (from :func:`host_data`), shuffled with
    unidl's portable RNG."""

    def __init__(self, x, y, sample_weight, batch_size, shuffle, float_dtype):
        self.x, self.y, self.w = x, y, sample_weight
        self.n = num_samples(self.x)
        self.batch_size = int(batch_size or 32)
        self.shuffle = shuffle
        self.float_dtype = float_dtype

    def __len__(self):
        return math.ceil(self.n / self.batch_size)

    def epoch(self, steps=None):
        """The batches ``(x, y, w)`` of one epoch as model tensors (at most ``steps``)."""
        from unidl import random as urandom

        order = urandom.permutation(self.n) if self.shuffle else None
        stop = self.n if steps is None else min(self.n, steps * self.batch_size)
        if order is None and _plain(self.x) and _plain(self.y) and self.w is None:
            yield from self._slices(stop)
            return
        for start in range(0, stop, self.batch_size):
            idx = order[start:start + self.batch_size] if order is not None else \
                slice(start, start + self.batch_size)
            def take(a, idx=idx):
                return to_model_tensor(a[idx], self.float_dtype)

            yield _take_all(take, self.x), _take_all(take, self.y), \
                take(self.w) if self.w is not None else None

    def _slices(self, stop):
        """The batches of one unshuffled, unweighted epoch of plain arrays ``x`` and ``y``:
        each array's conversion chosen once (2.5 us less per batch than the general path,
        a tenth of what ``evaluate`` adds to a small MLP's step on torch)."""
        x, y, size = self.x, self.y, self.batch_size
        to_x, to_y = _converter(x, self.float_dtype), _converter(y, self.float_dtype)
        for start in range(0, stop, size):
            yield to_x(x[start:start + size]), to_y(y[start:start + size]), None


def _plain(a) -> bool:
    return a.__class__ is np.ndarray


def _converter(a, float_dtype):
    """``to_model_tensor`` for the host array ``a`` (and its slices: the choice is made once
    per array, not per batch): floats in the model's float dtype, other dtypes kept."""
    if a.dtype.kind == "f" and a.dtype != _host_dtype(float_dtype):
        return lambda s: ops.convert_to_tensor(s, float_dtype)
    return ops.convert_to_tensor


def _take_all(take, data):
    """``take`` of every array of ``data`` (an array, or a structure of arrays; None stays
    None)."""
    if data is None:
        return None
    if data.__class__ is np.ndarray:  # (the common case, without the tree walk)
        return take(data)
    return tree.map_structure(take, data)


class ArrayAdapter:
    """Arrays in memory (checked by :func:`host_data`): batched and, with ``shuffle``,
    shuffled each epoch on the host; every epoch restarts from the first sample and runs
    ``min(steps, batches)`` batches.

    Example:
        >>> import numpy as np
        >>> import unidl
        >>> from unidl.data.adapters import adapt
        >>> with unidl.use_backend("numpy"):
        ...     data = adapt(np.ones((10, 2)), np.zeros(10), where="fit", batch_size=4)
        ...     data.steps, [xb.shape for xb, yb, wb in data.epoch()]
        (3, [(4, 2), (4, 2), (2, 2)])
    """

    exhausted = False

    def __init__(self, data, batch_size, shuffle, float_dtype, steps=None, class_weight=None,
                 where="fit"):
        w = data["sample_weight"]
        if class_weight is not None:
            cw = class_weights(where, check_class_weight(where, class_weight), data["y"])
            w = cw if w is None else _weighted(w, cw)
        self.batches = _Batches(data["x"], data["y"], w, batch_size, shuffle, float_dtype)
        self.max_steps = steps
        self.steps = len(self.batches) if steps is None else min(len(self.batches), int(steps))

    def epoch(self):
        return self.batches.epoch(self.max_steps)

    def close(self):
        pass


def _weighted(sample_weight, cw):
    """``sample_weight`` (host, one row per sample) times the class weights ``cw``."""
    w = np.asarray(sample_weight, np.float32)
    return w * cw.reshape((-1,) + (1,) * (w.ndim - 1))


def split_validation(data, split):
    """``data`` (a dict of host structures: x, y, sample_weight) cut into the first
    ``1 - split`` for training and the rest for validation (before any shuffling)."""
    n = num_samples(data["x"])
    cut = int(n * (1.0 - split))
    if cut <= 0 or cut >= n:
        raise ValueError(f"fit: validation_split={split} of {n} samples leaves no training or "
                         "validation data")

    def part(sl):
        return {k: tree.map_structure(lambda a: a[sl], v) if v is not None else None
                for k, v in data.items()}

    return part(slice(None, cut)), part(slice(cut, None))


def validation_arrays(validation_data):
    """``validation_data`` ``(x, y[, sample_weight])`` as checked host arrays."""
    if not isinstance(validation_data, (list, tuple)) or len(validation_data) not in (2, 3):
        got = f"a {type(validation_data).__name__}" + (
            f" of {len(validation_data)} items" if isinstance(validation_data, (list, tuple))
            else "")
        raise ValueError("fit: validation_data must be (x_val, y_val) or (x_val, y_val, "
                         f"sample_weight_val); got {got}")
    parts = dict(zip(("validation_data[0]", "validation_data[1]", "validation_data[2]"),
                     validation_data))
    arrays = list(host_data("fit", **parts).values())
    return {"x": arrays[0], "y": arrays[1], "sample_weight": arrays[2] if len(arrays) > 2
            else None}


# -- batches from a source -------------------------------------------------------------------
def unpack(batch, where, index):
    """``(x, y, sample_weight)`` of one batch, as Keras reads it: a list is a tuple; a tuple
    of 1 to 3 items is ``(x[, y[, sample_weight]])``; anything else is ``x`` alone."""
    if isinstance(batch, list):
        batch = tuple(batch)
    if isinstance(batch, tuple) and not hasattr(batch, "_fields"):
        if not 1 <= len(batch) <= 3:
            raise ValueError(f"{where}: batch {index} is a tuple of {len(batch)} items; a batch "
                             "is x, (x, y) or (x, y, sample_weight) (several inputs go in a "
                             "tuple or dict inside it: ((x1, x2), y))")
        return batch + (None,) * (3 - len(batch))
    return batch, None, None


class _Converter:
    """One batch of a source as ``(x, y, w)`` model tensors, after the checks arrays get
    (numeric, a batch axis, one length), naming the batch. A value that is already the
    active backend's tensor is used as it is (cast to the model's float dtype, moved to the
    current device); anything else is read with ``np.asarray``."""

    def __init__(self, where, float_dtype, class_weight=None, targets=True):
        self.where, self.float_dtype = where, float_dtype
        self.class_weight, self.targets = class_weight, targets
        self.multi_device = None

    def __call__(self, index, batch):
        x, y, w = unpack(batch, self.where, index)
        where = f"{self.where}: batch {index}"
        if not self.targets:
            y = w = None
        elif y is None:
            raise ValueError(f"{where} has no targets: {self.where.split(':')[0]} needs batches "
                             f"(x, y) or (x, y, sample_weight), got a {type(batch).__name__}")
        lengths, out = [], {}
        for arg, data in (("x", x), ("y", y), ("sample_weight", w)):
            if data is None:
                out[arg] = None
                continue
            leaves = named_leaves(arg, data) if isinstance(data, (list, tuple, dict)) else \
                [(arg, data)]
            tensors = []
            for name, value in leaves:
                tensor, n = self._leaf(where, arg, name, value)
                tensors.append(tensor)
                lengths.append((name, n))
            out[arg] = tree.unflatten(tree.flatten(data)[1], tensors) if isinstance(
                data, (list, tuple, dict)) else tensors[0]
        check_lengths(where, lengths)
        if self.class_weight is not None:
            cw = class_weights(where, self.class_weight, y)
            if w is not None:
                cw = _weighted(np.asarray(ops.to_numpy(w)), cw)
            out["sample_weight"] = to_model_tensor(cw, self.float_dtype)
        return out["x"], out["y"], out["sample_weight"]

    def _leaf(self, where, arg, name, value):
        """``(model tensor, number of samples)`` of one array of a batch."""
        import unidl

        be = unidl.current_backend()
        if be.is_tensor(value):
            try:
                dtype, shape = be.dtype_of(value), be.shape_of(value)
            except (KeyError, TypeError, ValueError):  # (a dtype unidl has no name for)
                dtype, shape = None, ()
            if dtype is not None and shape:
                return self._native(be, value, dtype), shape[0]
        arr = host_leaf(where, arg, name, value)
        if not arr.flags.writeable:  # (e.g. a TF tensor's memory: frameworks want it writable)
            arr = arr.copy()
        return to_model_tensor(arr, self.float_dtype), len(arr)

    def _native(self, be, value, dtype):
        from unidl import dtypes as _dt

        if _dt.is_float(dtype) and dtype != self.float_dtype:
            value = ops.cast(value, self.float_dtype)
        if self.multi_device is None:
            self.multi_device = len(be.devices()) > 1
        if self.multi_device:
            import unidl

            target = unidl.current_device()
            if be.device_of(value) != target:
                value = be.to_device(value, target)
        return value


_DONE = object()


class _Stream:
    """Batches read from a source pass by pass. Without ``steps`` each epoch is one full
    pass; with ``steps`` an epoch is the next ``steps`` batches of a pass that continues
    across epochs (a new pass starts when one ends, except for one-shot iterators), as
    Keras. ``exhausted`` turns true when the data ran out before an epoch was complete."""

    one_shot = False
    kind = "source of batches"

    def __init__(self, convert, length, steps=None, epochs=1, where="fit",
                 steps_name="steps_per_epoch", arg="x"):
        self.convert, self.length, self.where = convert, length, where
        if length == INFINITE and steps is None:
            raise ValueError(f"{where}: {arg} is an infinite {self.kind} (it never ends), so "
                             f"an epoch needs a length: pass {steps_name}=N (batches per "
                             "epoch)")
        if self.one_shot and steps is None and epochs > 1:
            raise ValueError(f"{where}: {arg} is a {self.kind}, which can be read only once, and "
                             f"{epochs} epochs need more than one pass: pass {steps_name}=N "
                             "(batches per epoch; it must then yield N per epoch, e.g. "
                             "loop with `while True:`), or a re-iterable input (a "
                             "unidl.data.Dataset, a sequence of batches, a DataLoader)")
        self.max_steps = steps
        self.steps = steps if steps is not None else (
            length if length is not None and length >= 0 else None)
        self.exhausted = False
        self._it, self._opened = None, False

    def _open_pass(self):
        """An iterator over one pass of raw batches (subclasses)."""
        raise NotImplementedError

    def _epoch_done(self):
        """Called when an epoch ran to its end (a sequence's ``on_epoch_end``)."""

    def epoch(self):
        """The next epoch's batches as ``(x, y, w)`` model tensors."""
        return self._pass() if self.max_steps is None else self._continued()

    def _pass(self):
        batches = self._open_pass()
        count = 0
        with self._closing(batches):
            for count, batch in enumerate(batches, 1):
                yield self.convert(count - 1, batch)
        self.exhausted = count == 0
        self._epoch_done()

    def _continued(self):
        for index in range(self.max_steps):
            batch = self._next_batch()
            if batch is _DONE:
                self.exhausted = True
                return
            yield self.convert(index, batch)
        self._epoch_done()

    def _next_batch(self):
        while True:
            fresh = self._it is None
            if fresh:
                if self.one_shot and self._opened:
                    return _DONE
                self._it, self._opened = iter(self._open_pass()), True
            try:
                return next(self._it)
            except StopIteration:
                self.close()
                if fresh:  # (a new pass with nothing in it)
                    return _DONE

    def close(self):
        """Close the pass kept open across epochs (stops a pipeline's threads); a one-shot
        iterator is the caller's: it is let go, not closed."""
        it, self._it = self._it, None
        if it is not None and hasattr(it, "close") and not self.one_shot:
            it.close()

    def _closing(self, it):
        if hasattr(it, "close") and not self.one_shot:
            return contextlib.closing(it)
        return contextlib.nullcontext(it)


class DatasetAdapter(_Stream):
    """A :class:`unidl.data.Dataset` of batches: its host elements, converted once (the
    length is its :meth:`~unidl.data.Dataset.cardinality`).

    Example:
        >>> import numpy as np
        >>> import unidl
        >>> from unidl.data import Dataset
        >>> from unidl.data.adapters import adapt
        >>> ds = Dataset.from_tensor_slices((np.ones((5, 2)), np.zeros(5))).batch(2)
        >>> with unidl.use_backend("numpy"):
        ...     data = adapt(ds, where="fit")
        ...     data.steps, [xb.shape for xb, yb, wb in data.epoch()]
        (3, [(2, 2), (2, 2), (1, 2)])
    """

    kind = "unidl.data.Dataset"

    def __init__(self, dataset, convert, **kwargs):
        self.dataset = dataset
        n = dataset.cardinality()
        super().__init__(convert, None if n == UNKNOWN else n, **kwargs)

    def _open_pass(self):
        from unidl.data.dataset import Seeds

        return self.dataset._open(Seeds.draw(self.dataset))


class SequenceAdapter(_Stream):
    """A sequence of batches, as ``keras.utils.PyDataset``: ``x[i]`` is batch ``i`` of
    ``len(x)`` (or of ``x.num_batches``; None means endless: ``x[0]``, ``x[1]``, ...). With
    ``shuffle`` the batches come in a new random order each pass (as Keras); its
    ``on_epoch_end()``, if any, runs after each epoch.

    Example:
        >>> import numpy as np
        >>> import unidl
        >>> from unidl.data.adapters import adapt
        >>> class Squares:
        ...     def __len__(self):
        ...         return 3
        ...     def __getitem__(self, i):
        ...         x = np.full((4, 1), float(i))
        ...         return x, x ** 2
        >>> with unidl.use_backend("numpy"):
        ...     data = adapt(Squares(), where="fit")
        ...     data.steps, [float(yb[0, 0]) for xb, yb, wb in data.epoch()]
        (3, [0.0, 1.0, 4.0])
    """

    kind = "sequence of batches"

    def __init__(self, sequence, convert, shuffle=False, **kwargs):
        self.sequence, self.shuffle = sequence, shuffle
        n = _num_batches(sequence)
        super().__init__(convert, INFINITE if n is None else n, **kwargs)

    def _open_pass(self):
        if self.length == INFINITE:
            return (self.sequence[i] for i in itertools.count())
        if self.shuffle:
            from unidl import random as urandom

            return (self.sequence[int(i)] for i in urandom.permutation(self.length))
        return (self.sequence[i] for i in range(self.length))

    def _epoch_done(self):
        hook = getattr(self.sequence, "on_epoch_end", None)
        if callable(hook):
            hook()


def _num_batches(sequence):
    try:
        n = sequence.num_batches
    except (AttributeError, NotImplementedError, TypeError):
        return len(sequence)
    return None if n is None else int(n)


class IterableAdapter(_Stream):
    """Any other iterable of batches: a generator (read once: an iterator cannot restart),
    a PyTorch ``DataLoader``, a ``tf.data.Dataset``, a list-like of batches. Its length is
    ``cardinality()`` if it has one (``-1`` infinite, ``-2`` unknown, as ``tf.data``), else
    ``len()`` (a ``TypeError`` meaning unknown), else unknown.

    Example:
        >>> import numpy as np
        >>> import unidl
        >>> from unidl.data.adapters import adapt
        >>> batches = ((np.ones((2, 3)), np.zeros(2)) for _ in range(4))
        >>> with unidl.use_backend("numpy"):
        ...     data = adapt(batches, where="evaluate")
        ...     data.steps, len(list(data.epoch()))
        (None, 4)
    """

    def __init__(self, iterable, convert, **kwargs):
        self.iterable = iterable
        self.one_shot = hasattr(iterable, "__next__")
        self.kind = "generator (or other iterator)" if self.one_shot else \
            f"{type(iterable).__name__} (an iterable of batches)"
        super().__init__(convert, _length(iterable), **kwargs)

    def _open_pass(self):
        return self.iterable if self.one_shot else iter(self.iterable)


def _length(iterable):
    """The number of batches: an int, INFINITE, or None for unknown."""
    cardinality = getattr(iterable, "cardinality", None)
    if callable(cardinality):
        with contextlib.suppress(Exception):
            n = int(np.asarray(cardinality()))
            return None if n == UNKNOWN else n
    try:
        return len(iterable)
    except TypeError:  # (no length, or an unknown one)
        return None


# -- the entry points ------------------------------------------------------------------------
def _describe(x):
    if isinstance(x, Dataset):
        return "unidl.data.Dataset"
    if hasattr(x, "__next__"):
        return "generator (or other iterator)"
    return f"{type(x).__name__} (a source of batches)"


def _is_sequence(x):
    return hasattr(x, "__getitem__") and (hasattr(x, "__len__") or hasattr(x, "num_batches"))


def _check_steps(where, name, steps):
    if steps is None:
        return None
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"{where}: {name} must be a positive int or None, got {steps!r}")
    return int(steps)


def adapt(x, y=None, sample_weight=None, *, where="fit", batch_size=None, shuffle=False,
          class_weight=None, steps=None, epochs=1, float_dtype="float32", targets=True,
          steps_name="steps_per_epoch", batch_size_name="batch_size", arg="x"):
    """The adapter for input ``x`` (with ``y`` and ``sample_weight`` for arrays): an object
    with ``steps`` (batches per epoch, None if unknown), ``epoch()`` (the next epoch's
    ``(x, y, w)`` batches of model tensors), ``exhausted`` and ``close()``. Every check that
    can run before training runs here; ``targets=False`` (predict) reads ``x`` alone. ``arg``
    (``"x"``, ``"validation_data"``) and the ``*_name`` arguments name things in errors.

    Raises:
        ValueError: bad data, or arguments that do not apply to the input (``y``,
            ``sample_weight`` or ``batch_size`` with a source of batches), or an infinite
            (or one-shot, for several epochs) input without ``steps``.
        TypeError: ``x`` is none of the accepted kinds.
    """
    if is_array_data(x):
        named = {"x": x, "y": y, "sample_weight": sample_weight} if targets else {"x": x}
        data = host_data(where, **named)
        data.setdefault("y", None)
        data.setdefault("sample_weight", None)
        return ArrayAdapter(data, batch_size, shuffle, float_dtype, steps, class_weight, where)
    kind = _describe(x)
    for name, value, hint in (
            ("y", y, "its batches carry the targets: (x, y) or (x, y, sample_weight)"),
            ("sample_weight", sample_weight, "yield it as the third item of each batch: "
             "(x, y, sample_weight)"),
            (batch_size_name, batch_size, "it yields batches already (choose their size where "
             "it is built, e.g. Dataset.batch(n))")):
        if value is not None:
            raise ValueError(f"{where}: {name} must not be given when {arg} is a {kind}: "
                             f"{hint}")
    if class_weight is not None:
        class_weight = check_class_weight(where, class_weight)
    convert = _Converter(where if arg == "x" else f"{where}: {arg}", float_dtype,
                         class_weight, targets)
    options = {"steps": _check_steps(where, steps_name, steps), "epochs": epochs,
               "where": where, "steps_name": steps_name, "arg": arg}
    if isinstance(x, Dataset):
        return DatasetAdapter(x, convert, **options)
    if _is_sequence(x) and not hasattr(x, "__next__"):
        return SequenceAdapter(x, convert, shuffle=shuffle, **options)
    if hasattr(x, "__iter__") or hasattr(x, "__next__"):
        return IterableAdapter(x, convert, **options)
    raise TypeError(f"{where}: {arg} is a {type(x).__name__}, which unidl cannot read data "
                    "from; "
                    "pass NumPy arrays (or tensors), a unidl.data.Dataset, a generator or "
                    "other iterable of (x, y[, sample_weight]) batches (a DataLoader, a "
                    "tf.data.Dataset), or a sequence of batches (__len__ and __getitem__)")


def fit_inputs(x, y=None, sample_weight=None, *, batch_size=None, shuffle=True,
               class_weight=None, steps_per_epoch=None, validation_split=0.0,
               validation_data=None, validation_steps=None, validation_batch_size=None,
               epochs=1, float_dtype="float32"):
    """The training and validation adapters (or None) of a ``fit`` call, checked before
    training: arrays first (then ``validation_data``, then ``validation_split``)."""
    if is_array_data(x):
        data = host_data("fit", x=x, y=y, sample_weight=sample_weight)
        val = None
        if validation_data is not None:
            val = _validation(validation_data, validation_steps, validation_batch_size,
                              batch_size, epochs, float_dtype)
        elif validation_split:
            data, part = split_validation(data, validation_split)
            val = ArrayAdapter(part, validation_batch_size or batch_size, False, float_dtype,
                               validation_steps)
        train = ArrayAdapter(data, batch_size, shuffle, float_dtype, steps_per_epoch,
                             class_weight)
        return train, val
    if validation_split:
        raise ValueError(f"fit: validation_split needs arrays, and x is a {_describe(x)}: pass "
                         "validation_data (arrays, or a source of validation batches) instead")
    train = adapt(x, y, sample_weight, where="fit", batch_size=batch_size, shuffle=shuffle,
                  class_weight=class_weight, steps=steps_per_epoch, epochs=epochs,
                  float_dtype=float_dtype)
    val = None if validation_data is None else _validation(
        validation_data, validation_steps, validation_batch_size, None, epochs, float_dtype)
    return train, val


def _validation(data, steps, batch_size, train_batch_size, epochs, float_dtype):
    if isinstance(data, (list, tuple)) or is_array_data(data):
        return ArrayAdapter(validation_arrays(data), batch_size or train_batch_size, False,
                            float_dtype, steps)
    return adapt(data, where="fit", batch_size=batch_size, steps=steps, epochs=epochs,
                 float_dtype=float_dtype, steps_name="validation_steps",
                 batch_size_name="validation_batch_size", arg="validation_data")


def ran_out_message(where, epoch, arg="x", steps_name="steps_per_epoch", stops="training"):
    """The warning when a source of batches ends before the epochs asked for."""
    return (f"{where}: {arg} ran out of data in epoch {epoch + 1}; {stops} stops. A "
            f"generator must yield {steps_name} batches for every epoch (loop it with "
            "`while True:`), and a dataset needs enough passes (Dataset.repeat())")
