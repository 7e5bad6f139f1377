"""Vocabulary layers: IntegerLookup, StringLookup, and (in
:mod:`unidl.layers.text_vectorization`) TextVectorization (Keras 3 names, arguments and
conventions).

**Strings stay on the host.** Not every backend has string tensors, so these layers do their
work in NumPy and Python: they take NumPy arrays or Python lists (strings as ``str``, or
UTF-8 ``bytes`` such as a TensorFlow string tensor's ``.numpy()``; integers for
IntegerLookup, also as any backend's tensor) and return the active backend's ``int64``
tensors: indices (``output_mode="int"``), or ``"one_hot"``, ``"multi_hot"`` and ``"count"``
vectors (int64 too, as Keras returns them). Being host code, they run eagerly: use them on
the data (``x = vectorizer(texts)``, or in a data pipeline's ``map``) or as the first layer
of a model called directly on strings; they have no gradient.

**Index layout** (Keras's): in ``"int"`` mode a ``mask_token`` takes index 0, then come
``num_oov_indices`` out-of-vocabulary indices, then the vocabulary. TextVectorization's mask
token is ``""``, so 0 is padding and 1 is out-of-vocabulary; StringLookup and IntegerLookup
have no mask token by default, so 0 is out-of-vocabulary. In the other modes the mask token
has no index (masked inputs add nothing). :meth:`adapt` orders the vocabulary by descending
frequency, ties by descending token (as Keras: ``"b"`` before ``"a"``, ``9`` before ``3``),
and keeps ``max_tokens`` entries counting the special ones.

The vocabulary is part of ``get_config``, so a model holding these layers saves and loads
with ``model.save``/``unidl.load_model``.

Example:
    >>> import unidl
    >>> from unidl import layers, ops
    >>> with unidl.use_backend("numpy"):
    ...     lookup = layers.StringLookup()
    ...     lookup.adapt(["cat", "dog", "dog", "emu"])
    ...     lookup.get_vocabulary(), ops.to_numpy(lookup(["dog", "yak", "cat"])).tolist()
    (['[UNK]', 'dog', 'emu', 'cat'], [1, 0, 3])
"""

from __future__ import annotations

import collections

import numpy as np

from unidl import ops
from unidl.layers.base import Layer, LayerError
from unidl.layers.encoding import encode_categories

__all__ = ["IntegerLookup", "StringLookup"]

_MODES = ("int", "one_hot", "multi_hot", "count")


def _check_mode(layer: str, output_mode) -> str:
    mode = {"binary": "multi_hot"}.get(str(output_mode).lower(), str(output_mode).lower())
    if mode in ("tf_idf", "tf-idf"):
        raise ValueError(f"{layer}: output_mode='tf_idf' is not supported; use 'int', "
                         "'one_hot', 'multi_hot' or 'count'")
    if mode not in _MODES:
        raise ValueError(f"{layer}: expected output_mode in {_MODES}, got {output_mode!r}")
    return mode


def _no_flag(layer: str, **flags) -> None:
    for name, value in flags.items():
        if value:
            raise ValueError(f"{layer}: {name}=True is not supported (unidl tensors are dense "
                             f"on every backend); use {name}=False")


def _host_batches(data):
    """``adapt``'s batches: an array, tensor, list or tuple is one batch; another iterable
    (a generator, a dataset) yields batches, an ``(x, ...)`` tuple giving its ``x``."""
    if isinstance(data, (np.ndarray, list, tuple, str, bytes)) or ops.is_tensor(data) or (
            hasattr(data, "shape") and hasattr(data, "dtype")):
        yield data
        return
    if not hasattr(data, "__iter__"):
        raise TypeError(f"adapt expects an array, a list or an iterable of batches, got "
                        f"{type(data).__name__}")
    for batch in data:
        if isinstance(batch, tuple) and batch:
            batch = batch[0]
        yield batch


def _as_host(values) -> np.ndarray:
    """``values`` (list, NumPy array, or any backend's tensor) as a NumPy array."""
    if isinstance(values, np.ndarray):
        return values
    if isinstance(values, (list, tuple, str, bytes, int, float)):
        return np.asarray(values)
    return np.asarray(ops.to_numpy(values))


def as_strings(values) -> np.ndarray:
    """``values`` as a NumPy ``str`` array (UTF-8 bytes decoded; numbers written out)."""
    arr = _as_host(values)
    if arr.dtype.kind == "U":
        return arr
    if arr.dtype.kind == "S" or (arr.dtype.kind == "O" and arr.size and
                                 isinstance(arr.flat[0], bytes)):
        return np.vectorize(lambda b: b.decode("utf-8") if isinstance(b, bytes) else str(b),
                            otypes=[str])(arr) if arr.size else arr.astype(str)
    return arr.astype(str)


# ---- IntegerLookup / StringLookup ------------------------------------------------------------
class _IndexLookup(Layer):
    """Maps tokens to indices (or back, ``invert=True``); see the module docstring."""

    _key = "token"

    def __init__(self, max_tokens=None, num_oov_indices=1, mask_token=None, oov_token=None,
                 vocabulary=None, invert=False, output_mode="int", pad_to_max_tokens=False,
                 sparse=False, **kwargs):
        super().__init__(**kwargs)
        name = type(self).__name__
        if max_tokens is not None and int(max_tokens) <= 1:
            raise ValueError(f"{name}: expected max_tokens > 1 or None, got {max_tokens!r}")
        if pad_to_max_tokens and max_tokens is None:
            raise ValueError(f"{name}: pad_to_max_tokens=True needs max_tokens")
        if int(num_oov_indices) < 0:
            raise ValueError(f"{name}: expected num_oov_indices >= 0, got {num_oov_indices!r}")
        self.output_mode = _check_mode(name, output_mode)
        if invert and self.output_mode != "int":
            raise ValueError(f"{name}: invert=True needs output_mode='int', got "
                             f"{self.output_mode!r}")
        _no_flag(name, sparse=sparse)
        self.max_tokens = None if max_tokens is None else int(max_tokens)
        self.num_oov_indices = int(num_oov_indices)
        self.mask_token = self._token(mask_token)
        self.oov_token = self._token(oov_token)
        self.invert = bool(invert)
        self.pad_to_max_tokens = bool(pad_to_max_tokens)
        self._tokens: list = []
        self._index: dict = {}
        self._fixed = False  # a vocabulary was given (adapt would replace it: an error)
        if vocabulary is not None:
            self.set_vocabulary(vocabulary)

    # -- vocabulary ---------------------------------------------------------------------------
    def _token(self, value):
        return value

    def _values(self, inputs) -> np.ndarray:
        raise NotImplementedError

    def _oov_start(self) -> int:
        return 1 if self.mask_token is not None and self.output_mode == "int" else 0

    def _token_start(self) -> int:
        return self._oov_start() + self.num_oov_indices

    def _specials(self) -> list:
        head = [self.mask_token] if self._oov_start() else []
        return head + [self.oov_token] * self.num_oov_indices

    def get_vocabulary(self, include_special_tokens=True) -> list:
        """The vocabulary in index order (with the mask and OOV tokens first, unless
        ``include_special_tokens=False``)."""
        tokens = list(self._tokens)
        return self._specials() + tokens if include_special_tokens else tokens

    def vocabulary_size(self) -> int:
        """The number of indices, special ones included."""
        return self._token_start() + len(self._tokens)

    def set_vocabulary(self, vocabulary) -> None:
        """Use ``vocabulary`` (a list or 1-D array of tokens; leading special tokens, as
        :meth:`get_vocabulary` returns them, are accepted and dropped)."""
        tokens = [self._token(t) for t in _as_host(vocabulary).reshape(-1).tolist()]
        specials = self._specials()
        if tokens[:len(specials)] == specials and specials:
            tokens = tokens[len(specials):]
        for special in (self.mask_token, self.oov_token):
            if special is not None and special in tokens:
                raise LayerError(self, f"the vocabulary holds the special token {special!r} "
                                       "at a position other than its own")
        repeated = [t for t, n in collections.Counter(tokens).items() if n > 1]
        if repeated:
            raise LayerError(self, f"the vocabulary repeats {repeated[:5]}")
        if self.max_tokens is not None and self._token_start() + len(tokens) > self.max_tokens:
            raise LayerError(self, f"the vocabulary has {self._token_start() + len(tokens)} "
                                   f"entries with the special ones, more than max_tokens="
                                   f"{self.max_tokens}")
        self._set_tokens(tokens)
        self._fixed = True

    def _set_tokens(self, tokens) -> None:
        self._tokens = list(tokens)
        start = self._token_start()
        self._index = {t: start + i for i, t in enumerate(self._tokens)}

    def adapt(self, data, steps=None) -> None:
        """Build the vocabulary from ``data`` (an array or list, or an iterable of batches,
        at most ``steps`` of them): tokens by descending count, ties by descending token."""
        if self._fixed:
            raise LayerError(self, "has a fixed vocabulary (given as vocabulary= or with "
                                   "set_vocabulary): adapt would replace it")
        counts = collections.Counter()
        for i, batch in enumerate(_host_batches(data)):
            if steps is not None and i >= steps:
                break
            counts.update(self._tokens_of(batch))
        self._set_tokens(self._ranked(counts))

    def _tokens_of(self, batch) -> list:
        return self._values(batch).reshape(-1).tolist()

    def _ranked(self, counts: collections.Counter) -> list:
        for special in (self.mask_token, self.oov_token):
            counts.pop(special, None)
        ranked = [t for t, _ in sorted(counts.items(), key=lambda kv: (kv[1], kv[0]),
                                       reverse=True)]
        if self.max_tokens is not None:
            ranked = ranked[:max(self.max_tokens - self._token_start(), 0)]
        return ranked

    # -- lookup -------------------------------------------------------------------------------
    def lookup(self, values: np.ndarray) -> np.ndarray:
        """The int64 indices of ``values`` (a NumPy array of tokens), on the host; mask tokens
        give 0 in ``"int"`` mode and -1 (nothing) in the others."""
        flat = values.reshape(-1).tolist()
        out = np.fromiter((self._index.get(v, -2) for v in flat), np.int64, len(flat))
        if self.mask_token is not None:
            masked = np.fromiter((v == self.mask_token for v in flat), bool, len(flat))
            out[masked] = 0 if self.output_mode == "int" else -1
        oov = out == -2
        if oov.any():
            out[oov] = self._oov_indices([v for v, o in zip(flat, oov) if o])
        return out.reshape(values.shape)

    def _oov_indices(self, values) -> np.ndarray:
        if self.num_oov_indices == 0:
            raise LayerError(self, f"got values outside the vocabulary {values[:5]} with "
                                   "num_oov_indices=0 (set num_oov_indices=1)")
        start = self._oov_start()
        if self.num_oov_indices == 1:
            return np.full(len(values), start, np.int64)
        return start + np.mod(np.asarray(values, np.int64), self.num_oov_indices)

    def _depth(self) -> int:
        return self.max_tokens if self.pad_to_max_tokens else self.vocabulary_size()

    def _invert(self, ids: np.ndarray) -> np.ndarray:
        """The tokens of indices ``ids``: the mask token at 0 (when it has an index), the
        vocabulary's tokens, and the OOV token for OOV and out-of-range indices."""
        table, start = self.get_vocabulary(), self._token_start()

        def token(i):
            if i == 0 and self._oov_start():
                return self.mask_token
            return table[i] if start <= i < len(table) else self.oov_token

        return np.asarray([token(i) for i in ids.reshape(-1).tolist()]).reshape(ids.shape)

    def encode(self, ids: np.ndarray):
        """Host indices as the layer's output: an int64 tensor, or encoded vectors."""
        tensor = ops.convert_to_tensor(ids, "int64")
        if self.output_mode == "int":
            return tensor
        return encode_categories(self, tensor, self._depth(), self.output_mode, "int64")

    def call(self, inputs):
        values = self._values(inputs)
        if self.invert:
            return self._inverted_output(self._invert(values.astype(np.int64)))
        return self.encode(self.lookup(values))

    def _inverted_output(self, tokens: np.ndarray):
        return tokens

    def compute_output_shape(self, input_shape):
        shape = tuple(input_shape)
        if self.output_mode == "int":
            return shape
        depth = self._depth()
        if self.output_mode == "one_hot":
            return (shape[:-1] if len(shape) > 1 and shape[-1] == 1 else shape) + (depth,)
        return shape[:-1] + (depth,)

    def get_config(self):
        return {**super().get_config(), "max_tokens": self.max_tokens,
                "num_oov_indices": self.num_oov_indices, "mask_token": self.mask_token,
                "oov_token": self.oov_token, "vocabulary": self.get_vocabulary(False) or None,
                "invert": self.invert, "output_mode": self.output_mode,
                "pad_to_max_tokens": self.pad_to_max_tokens}


class StringLookup(_IndexLookup):
    """Map strings to integer indices (see the module docstring for the index layout and
    the host-side processing): ``mask_token=None``, ``oov_token="[UNK]"`` and one OOV index
    by default, so unknown strings give 0 and the vocabulary starts at 1. ``invert=True``
    maps indices back to strings (a NumPy array). ``num_oov_indices`` may be 0 (unknown
    strings are an error) or 1 (Keras hashes into several with FarmHash, which unidl does
    not reproduce).

    Example:
        >>> import unidl
        >>> from unidl import layers, ops
        >>> with unidl.use_backend("numpy"):
        ...     lookup = layers.StringLookup(vocabulary=["a", "b", "c"])
        ...     ops.to_numpy(lookup([["a", "c"], ["d", "b"]])).tolist()
        [[1, 3], [0, 2]]
    """

    def __init__(self, max_tokens=None, num_oov_indices=1, mask_token=None, oov_token="[UNK]",
                 vocabulary=None, invert=False, output_mode="int", pad_to_max_tokens=False,
                 sparse=False, encoding="utf-8", **kwargs):
        if int(num_oov_indices) > 1:
            raise ValueError(f"StringLookup: num_oov_indices > 1 hashes strings with "
                             f"FarmHash in Keras, which unidl does not reproduce; got "
                             f"{num_oov_indices}, use 0 or 1")
        if str(encoding).lower().replace("-", "") != "utf8":
            raise ValueError(f"StringLookup: only encoding='utf-8' is supported, got "
                             f"{encoding!r}")
        super().__init__(max_tokens, num_oov_indices, mask_token, oov_token, vocabulary,
                         invert, output_mode, pad_to_max_tokens, sparse, **kwargs)

    def _token(self, value):
        if value is None:
            return None
        return value.decode("utf-8") if isinstance(value, bytes) else str(value)

    def _values(self, inputs) -> np.ndarray:
        return as_strings(inputs)


class IntegerLookup(_IndexLookup):
    """Map integers to indices (see the module docstring): ``mask_token=None``,
    ``oov_token=-1``, one OOV index by default; with ``num_oov_indices=n > 1`` an unknown
    value ``v`` gets OOV index ``v mod n`` (Keras's ``"floormod"``). Inputs may be NumPy
    arrays, lists or tensors; ``invert=True`` maps indices back to values.

    Example:
        >>> import numpy as np, unidl
        >>> from unidl import layers, ops
        >>> with unidl.use_backend("numpy"):
        ...     lookup = layers.IntegerLookup()
        ...     lookup.adapt(np.array([7, 3, 3, 9]))
        ...     lookup.get_vocabulary(), ops.to_numpy(lookup(np.array([3, 9, 4]))).tolist()
        ([-1, 3, 9, 7], [1, 2, 0])
    """

    def __init__(self, max_tokens=None, num_oov_indices=1, mask_token=None, oov_token=-1,
                 vocabulary=None, vocabulary_dtype="int64", invert=False, output_mode="int",
                 sparse=False, pad_to_max_tokens=False, **kwargs):
        if str(vocabulary_dtype) not in ("int64", "int32"):
            raise ValueError(f"IntegerLookup: expected vocabulary_dtype 'int64' or 'int32', "
                             f"got {vocabulary_dtype!r}")
        super().__init__(max_tokens, num_oov_indices, mask_token, oov_token, vocabulary,
                         invert, output_mode, pad_to_max_tokens, sparse, **kwargs)
        self.vocabulary_dtype = str(vocabulary_dtype)

    def _token(self, value):
        return None if value is None else int(value)

    def _values(self, inputs) -> np.ndarray:
        arr = _as_host(inputs)
        if arr.dtype.kind not in "iub" and not (arr.dtype.kind == "f" and
                                                np.all(np.mod(arr, 1) == 0)):
            raise LayerError(self, f"expected integer inputs, got dtype {arr.dtype}")
        return arr.astype(np.int64)

    def _inverted_output(self, tokens: np.ndarray):
        return ops.convert_to_tensor(tokens.astype(np.int64), "int64")

    def get_config(self):
        return {**super().get_config(), "vocabulary_dtype": self.vocabulary_dtype}
