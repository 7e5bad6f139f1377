"""``unidl.layers``: Keras-style layers computed with :mod:`unidl.ops` (every backend).

One import block per module, alphabetical; ``__all__`` is built from them (every public,
non-module name imported here is exported).

Example:
    >>> import unidl
    >>> from unidl import layers, ops
    >>> with unidl.use_backend("numpy"):
    ...     ops.shape(layers.Dense(2)(ops.ones((3, 4))))
    (3, 2)
"""

# ruff: noqa: F401  (re-exports; __all__ is computed below)
import types as _types

from unidl.layers.attention import MultiHeadAttention
from unidl.layers.augmentation import (
    GaussianNoise,
    RandomBrightness,
    RandomContrast,
    RandomCrop,
    RandomFlip,
)
from unidl.layers.augmentation_transforms import RandomRotation, RandomTranslation, RandomZoom
from unidl.layers.base import Layer, LayerError
from unidl.layers.cells import GRUCell, LSTMCell, SimpleRNNCell
from unidl.layers.convolutional import (
    Conv1D,
    Conv1DTranspose,
    Conv2D,
    Conv2DTranspose,
    Convolution1D,
    Convolution1DTranspose,
    Convolution2D,
    Convolution2DTranspose,
    DepthwiseConv1D,
    DepthwiseConv2D,
    SeparableConv1D,
    SeparableConv2D,
    SeparableConvolution1D,
    SeparableConvolution2D,
)
from unidl.layers.core import (
    Activation,
    Dense,
    Dropout,
    Embedding,
    Flatten,
    Identity,
    Lambda,
    Permute,
    Reshape,
)
from unidl.layers.encoding import CategoryEncoding
from unidl.layers.lookup import IntegerLookup, StringLookup
from unidl.layers.merge import (
    Add,
    Average,
    Concatenate,
    Maximum,
    Minimum,
    Multiply,
    Subtract,
    add,
    average,
    concatenate,
    maximum,
    minimum,
    multiply,
    subtract,
)
from unidl.layers.normalization import BatchNormalization, LayerNormalization
from unidl.layers.pooling import (
    AveragePooling1D,
    AveragePooling2D,
    AvgPool1D,
    AvgPool2D,
    GlobalAveragePooling1D,
    GlobalAveragePooling2D,
    GlobalAvgPool1D,
    GlobalAvgPool2D,
    GlobalMaxPool1D,
    GlobalMaxPool2D,
    GlobalMaxPooling1D,
    GlobalMaxPooling2D,
    MaxPool1D,
    MaxPool2D,
    MaxPooling1D,
    MaxPooling2D,
)
from unidl.layers.preprocessing import CenterCrop, Normalization, Rescaling, Resizing
from unidl.layers.reshaping import (
    Cropping1D,
    Cropping2D,
    RepeatVector,
    UpSampling1D,
    UpSampling2D,
    ZeroPadding1D,
    ZeroPadding2D,
)
from unidl.layers.rnn import GRU, LSTM, RNN, Bidirectional, SimpleRNN
from unidl.layers.text_vectorization import TextVectorization

__all__ = sorted(name for name, value in globals().items()
                 if not name.startswith("_") and not isinstance(value, _types.ModuleType))
