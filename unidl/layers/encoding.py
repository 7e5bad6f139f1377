"""CategoryEncoding, and the category encodings the vocabulary layers share (Keras 3's
``"one_hot"``, ``"multi_hot"`` and ``"count"``), written with ``ops.one_hot`` so they run on
every backend.

Example:
    >>> import numpy as np, unidl
    >>> from unidl import layers, ops
    >>> with unidl.use_backend("numpy"):
    ...     ops.to_numpy(layers.CategoryEncoding(3)(np.array([[0, 2], [1, 1]]))).tolist()
    [[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]]
"""

from __future__ import annotations

from unidl import ops
from unidl.layers.base import Layer, LayerError
from unidl.layers.preprocessing import positive_int

__all__ = ["CategoryEncoding", "encode_categories"]

ENCODINGS = ("one_hot", "multi_hot", "count")


def encode_categories(layer, ids, depth: int, output_mode: str, dtype, weights=None):
    """Integer ``ids`` (a tensor) encoded as Keras encodes them: ``"one_hot"`` adds an axis of
    size ``depth`` (replacing a last axis of size 1); ``"multi_hot"`` and ``"count"`` treat
    the last axis as one sample's ids (a rank-1 input is one sample). Ids outside ``[0,
    depth)`` add nothing."""
    shape = tuple(ops.shape(ids))
    if not shape:
        ids = ops.reshape(ids, (1,))
        shape = (1,)
    if output_mode == "one_hot":
        if len(shape) > 1 and shape[-1] == 1:
            ids = ops.squeeze(ids, -1)
        return ops.one_hot(ids, depth, dtype=dtype)
    hot = ops.one_hot(ids, depth, dtype=dtype)  # (..., k, depth)
    if weights is not None:
        hot = ops.multiply(hot, ops.expand_dims(ops.cast(weights, dtype), -1))
    if output_mode == "count":
        return ops.sum(hot, axis=-2)
    return ops.max(hot, axis=-2)


class CategoryEncoding(Layer):
    """Encode integer category ids in ``[0, num_tokens)`` as ``"one_hot"``, ``"multi_hot"``
    (default: ``(batch, k)`` ids -> ``(batch, num_tokens)`` with a 1 for each id present) or
    ``"count"`` vectors (how often each id appears; ``count_weights`` of the ids' shape weight
    each occurrence), in the layer's float dtype. A rank-1 input is one sample for
    ``"multi_hot"``/``"count"`` and a batch of single ids for ``"one_hot"``, as in Keras.

    Example:
        >>> import numpy as np, unidl
        >>> from unidl import layers, ops
        >>> with unidl.use_backend("numpy"):
        ...     enc = layers.CategoryEncoding(4, output_mode="count")
        ...     ops.to_numpy(enc(np.array([[0, 1, 1], [3, 3, 2]]))).tolist()
        [[1.0, 2.0, 0.0, 0.0], [0.0, 0.0, 1.0, 2.0]]
    """

    def __init__(self, num_tokens=None, output_mode="multi_hot", sparse=False, **kwargs):
        super().__init__(**kwargs)
        if num_tokens is None:
            raise ValueError("CategoryEncoding: num_tokens is required")
        self.num_tokens = positive_int("CategoryEncoding", "num_tokens", num_tokens)
        mode = str(output_mode).lower()
        if mode not in ENCODINGS:
            raise ValueError(f"CategoryEncoding: expected output_mode in {ENCODINGS}, got "
                             f"{output_mode!r}")
        if sparse:
            raise ValueError("CategoryEncoding: sparse outputs are not supported (unidl "
                             "tensors are dense on every backend); use sparse=False")
        self.output_mode = mode
        self.sparse = False

    def call(self, inputs, count_weights=None):
        if count_weights is not None and self.output_mode != "count":
            raise LayerError(self, f"count_weights needs output_mode='count', got "
                                   f"output_mode={self.output_mode!r}")
        x = ops.convert_to_tensor(inputs)
        if not ops.dtype(x).startswith(("int", "uint")):
            x = ops.cast(x, "int64")
        return encode_categories(self, x, self.num_tokens, self.output_mode, self.dtype,
                                 count_weights)

    def compute_output_shape(self, input_shape):
        shape = tuple(input_shape)
        if not shape:
            return (self.num_tokens,)
        if self.output_mode == "one_hot" and (shape[-1] != 1 or len(shape) == 1):
            return shape + (self.num_tokens,)
        return shape[:-1] + (self.num_tokens,)

    def get_config(self):
        return {**super().get_config(), "num_tokens": self.num_tokens,
                "output_mode": self.output_mode, "sparse": self.sparse}
