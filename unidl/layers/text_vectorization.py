"""TextVectorization: strings to token indices or token counts, as Keras 3's layer, on the
host (NumPy and Python; see :mod:`unidl.layers.lookup` for the conventions: index 0 is
padding, 1 out-of-vocabulary, then the vocabulary by descending frequency, ties by
descending token; int64 tensors of the active backend come out).

Standardization and splitting follow TensorFlow's string ops, which Keras uses: only ASCII
letters are lowercased (``tf.strings.lower``), only ASCII punctuation is removed, and
``"whitespace"`` splits on ASCII whitespace only (a no-break space stays inside a token).

Example:
    >>> import unidl
    >>> from unidl import layers, ops
    >>> with unidl.use_backend("numpy"):
    ...     vec = layers.TextVectorization(output_sequence_length=4)
    ...     vec.adapt(["The cat sat.", "The dog!"])
    ...     vec.get_vocabulary(), ops.to_numpy(vec(["the bird sat"])).tolist()
    (['', '[UNK]', 'the', 'sat', 'dog', 'cat'], [[2, 1, 3, 0]])
"""

from __future__ import annotations

import collections
import re
import string

import numpy as np

from unidl import ops
from unidl.layers.base import Layer, LayerError
from unidl.layers.lookup import StringLookup, _check_mode, _host_batches, _no_flag, as_strings

__all__ = ["TextVectorization"]

_STANDARDIZE = ("lower_and_strip_punctuation", "lower", "strip_punctuation")
_SPLIT = ("whitespace", "character")
#: ``tf.strings.lower`` (no encoding) lowercases ASCII letters only
_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)
_NO_PUNCTUATION = str.maketrans("", "", string.punctuation)
#: what ``tf.strings.split`` splits on: ASCII whitespace (not NBSP, not U+001C..U+001F)
_WHITESPACE = re.compile("[ \t\n\v\f\r]+")


class TextVectorization(Layer):
    """Turn strings into token indices or token-count vectors, as Keras's layer (on the
    host; see the module docstring): ``standardize`` (``"lower_and_strip_punctuation"``,
    ``"lower"``, ``"strip_punctuation"``, None or a callable on a NumPy string array; as
    TensorFlow, only ASCII letters are lowercased and ASCII punctuation removed), ``split``
    (``"whitespace"``: ASCII whitespace, ``"character"``, None or a callable on one
    string), ``ngrams`` (None, n, or a tuple of widths: the n-grams joined by spaces), then
    a vocabulary lookup with ``""`` as the mask (index 0, padding) and ``"[UNK]"`` as the
    out-of-vocabulary token (index 1 in ``"int"`` mode).

    ``output_mode="int"`` returns ``(batch, length)`` int64 indices, padded with 0 to the
    longest text of the batch or cut/padded to ``output_sequence_length``;
    ``"multi_hot"`` and ``"count"`` return int64 vectors of the vocabulary's size (or
    ``max_tokens`` with ``pad_to_max_tokens``). Inputs: a list or 1-D array of strings (or
    ``(batch, 1)``).

    Example:
        >>> import unidl
        >>> from unidl import layers, ops
        >>> with unidl.use_backend("numpy"):
        ...     vec = layers.TextVectorization(output_mode="count")
        ...     vec.adapt(["a b b", "c"])
        ...     vec.get_vocabulary(), ops.to_numpy(vec(["b, b, z!"])).tolist()
        (['[UNK]', 'b', 'c', 'a'], [[1, 2, 0, 0]])
    """

    def __init__(self, max_tokens=None, standardize="lower_and_strip_punctuation",
                 split="whitespace", ngrams=None, output_mode="int",
                 output_sequence_length=None, pad_to_max_tokens=False, vocabulary=None,
                 sparse=False, ragged=False, encoding="utf-8", **kwargs):
        mode = _check_mode("TextVectorization", output_mode)
        if mode == "one_hot":
            raise ValueError("TextVectorization: output_mode='one_hot' is not supported; use "
                             "'int', 'multi_hot' or 'count'")
        super().__init__(**kwargs)
        self.standardize = _text_option("standardize", standardize, _STANDARDIZE)
        self.split = _text_option("split", split, _SPLIT)
        self.ngrams = _ngram_widths(ngrams)
        if output_sequence_length is not None:
            if mode != "int":
                raise ValueError(f"TextVectorization: output_sequence_length needs "
                                 f"output_mode='int', got {mode!r}")
            if int(output_sequence_length) < 1:
                raise ValueError(f"TextVectorization: expected output_sequence_length >= 1, "
                                 f"got {output_sequence_length!r}")
        _no_flag("TextVectorization", sparse=sparse, ragged=ragged)
        self.output_mode = mode
        self.output_sequence_length = (None if output_sequence_length is None
                                       else int(output_sequence_length))
        self._lookup = StringLookup(max_tokens=max_tokens, mask_token="", output_mode=mode,
                                    pad_to_max_tokens=pad_to_max_tokens, encoding=encoding,
                                    vocabulary=vocabulary, dtype=self.dtype,
                                    name=f"{self.name}_lookup")

    @property
    def max_tokens(self):
        return self._lookup.max_tokens

    def get_vocabulary(self, include_special_tokens=True) -> list:
        """The vocabulary in index order (``""`` and ``"[UNK]"`` first in ``"int"`` mode)."""
        return self._lookup.get_vocabulary(include_special_tokens)

    def vocabulary_size(self) -> int:
        return self._lookup.vocabulary_size()

    def set_vocabulary(self, vocabulary) -> None:
        """Use ``vocabulary`` (tokens, optionally with the special ones first)."""
        self._lookup.set_vocabulary(vocabulary)

    def adapt(self, data, batch_size=None, steps=None) -> None:
        """Build the vocabulary from texts: a list or array of strings, or an iterable of
        such batches (``(x, ...)`` tuples give their ``x``), at most ``steps`` of them."""
        if self._lookup._fixed:
            raise LayerError(self, "has a fixed vocabulary (given as vocabulary= or with "
                                   "set_vocabulary): adapt would replace it")
        counts = collections.Counter()
        for i, batch in enumerate(_host_batches(data)):
            if steps is not None and i >= steps:
                break
            for tokens in self.tokenize(batch):
                counts.update(tokens)
        self._lookup._set_tokens(self._lookup._ranked(counts))

    def tokenize(self, texts) -> list:
        """The tokens of each text (standardized, split, n-grams), as lists of strings."""
        arr = as_strings(texts)
        if arr.ndim == 2 and arr.shape[1] == 1:
            arr = arr[:, 0]
        if arr.ndim != 1:
            raise LayerError(self, f"expected texts of shape (batch,) or (batch, 1), got shape "
                                   f"{arr.shape}")
        arr = self._standardized(arr)
        out = []
        for text in arr.tolist():
            tokens = self._split(text)
            if self.ngrams:
                tokens = [" ".join(tokens[i:i + n]) for n in self.ngrams
                          for i in range(len(tokens) - n + 1)]
            out.append(tokens)
        return out

    def _standardized(self, arr: np.ndarray) -> np.ndarray:
        if callable(self.standardize):
            return as_strings(self.standardize(arr))
        if self.standardize is None:
            return arr
        table = {}
        if "lower" in self.standardize:
            table.update(_ASCII_LOWER)
        if "punctuation" in self.standardize:
            table.update(_NO_PUNCTUATION)
        return np.asarray([s.translate(table) for s in arr.tolist()], dtype=str).reshape(
            arr.shape)

    def _split(self, text: str) -> list:
        if self.split is None:
            return [text]
        if callable(self.split):
            return [str(t) for t in self.split(text)]
        if self.split == "character":
            return list(text)
        return [t for t in _WHITESPACE.split(text) if t]

    def call(self, inputs):
        token_lists = self.tokenize(inputs)
        lookup = self._lookup
        ids = [lookup.lookup(np.asarray(tokens, dtype=str)) for tokens in token_lists]
        if self.output_mode != "int":
            depth = lookup._depth()
            rows = [np.bincount(i[i >= 0], minlength=depth)[:depth] for i in ids]
            counts = np.stack(rows) if rows else np.zeros((0, depth), np.int64)
            if self.output_mode != "count":
                counts = np.minimum(counts, 1)
            return ops.convert_to_tensor(counts.astype(np.int64), "int64")
        length = self.output_sequence_length
        if self.split is None and length is None:  # one token per text: (batch,), as Keras
            ids = [i if len(i) else np.zeros((1,), np.int64) for i in ids]
            return ops.convert_to_tensor(np.concatenate(ids + [np.zeros((0,), np.int64)]),
                                         "int64")
        if length is None:
            length = max((len(i) for i in ids), default=0)
        out = np.zeros((len(ids), length), np.int64)
        for row, i in zip(out, ids):
            row[:min(len(i), length)] = i[:length]
        return ops.convert_to_tensor(out, "int64")

    def compute_output_shape(self, input_shape):
        if self.output_mode == "int":
            if self.split is None and self.output_sequence_length is None:
                return (input_shape[0],)
            return (input_shape[0], self.output_sequence_length)
        return (input_shape[0], self._lookup._depth())

    def get_config(self):
        return {**super().get_config(), "max_tokens": self.max_tokens,
                "standardize": self.standardize, "split": self.split,
                "ngrams": None if self.ngrams is None else list(self.ngrams),
                "output_mode": self.output_mode,
                "output_sequence_length": self.output_sequence_length,
                "pad_to_max_tokens": self._lookup.pad_to_max_tokens,
                "vocabulary": self.get_vocabulary(False) or None}


def _text_option(name: str, value, allowed):
    if value is None or callable(value):
        return value
    v = str(value).lower()
    if v not in allowed:
        raise ValueError(f"TextVectorization: expected {name} in {allowed}, None or a "
                         f"callable, got {value!r}")
    return v


def _ngram_widths(ngrams):
    if ngrams is None:
        return None
    widths = tuple(range(1, int(ngrams) + 1)) if isinstance(ngrams, (int, np.integer)) \
        else tuple(int(n) for n in ngrams)
    if not widths or any(n < 1 for n in widths):
        raise ValueError(f"TextVectorization: expected ngrams as None, an int >= 1 or a "
                         f"tuple of them, got {ngrams!r}")
    return widths
