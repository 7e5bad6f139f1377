"""Reading IDX files (the format of MNIST and Fashion-MNIST), gzipped or not.

An IDX file is a 4-byte magic number (two zero bytes, a type code, the number of
dimensions), one big-endian uint32 per dimension, then the values in C order. Every way a
file can be wrong (unreadable, not gzip, failed gzip CRC, cut short, bad magic number, more or
fewer bytes than its header announces) raises :class:`CorruptFileError` naming the file.

Example:
    >>> from unidl.datasets.idx import load_idx
    >>> images = load_idx("t10k-images-idx3-ubyte.gz")  # doctest: +SKIP
    >>> images.shape, images.dtype  # doctest: +SKIP
    ((10000, 28, 28), dtype('uint8'))
"""

from __future__ import annotations

import gzip
import os
import zlib

import numpy as np

from unidl.datasets.download import CorruptFileError

__all__ = ["load_idx", "parse_idx", "read_maybe_gzipped", "load_image_label_pair"]

#: IDX type code -> NumPy dtype (big-endian for multi-byte types, as the format stores them)
_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_maybe_gzipped(path) -> bytes:
    """The bytes of ``path``, decompressed when the name ends in ``.gz``.

    Raises :class:`CorruptFileError` naming the file for a truncated or corrupt gzip stream
    (the CRC and length gzip stores are checked) and for a file that cannot be read.
    """
    path = os.fspath(path)
    try:
        if path.endswith(".gz"):
            with gzip.open(path, "rb") as fh:
                return fh.read()
        with open(path, "rb") as fh:
            return fh.read()
    except EOFError as exc:
        raise CorruptFileError(f"{path}: truncated gzip file ({exc})") from None
    except (gzip.BadGzipFile, zlib.error) as exc:
        raise CorruptFileError(f"{path}: corrupt gzip file ({exc})") from None
    except OSError as exc:
        raise CorruptFileError(f"{path}: cannot be read ({exc})") from None


def parse_idx(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Decode the bytes of one IDX file; ``name`` is used in error messages."""
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _TYPES:
        raise CorruptFileError(f"{name}: not an IDX file (bad magic number "
                               f"{data[:4].hex() or 'missing'}, expected 0000TTNN with a "
                               f"known type code TT)")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise CorruptFileError(f"{name}: truncated IDX header: {len(data)} bytes, the header "
                               f"of a {ndim}-dimensional file needs {header}")
    dims = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_TYPES[data[2]])
    expected = header + int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(data) != expected:
        state = "truncated" if len(data) < expected else "corrupt (trailing bytes)"
        raise CorruptFileError(f"{name}: {state} IDX file: {len(data):,} bytes, the header's "
                               f"shape {dims} of {dtype.name} needs {expected:,}")
    flat = np.frombuffer(data, dtype=dtype, offset=header)
    return flat.reshape(dims).astype(dtype.newbyteorder("="))


def load_idx(path) -> np.ndarray:
    """Read one IDX file (``.gz`` allowed) into a NumPy array in native byte order."""
    path = os.fspath(path)
    return parse_idx(read_maybe_gzipped(path), path)


def load_image_label_pair(images_path, labels_path, image_shape=(28, 28), num_classes=10):
    """``(x, y)`` from an IDX image file and its IDX label file, both uint8, checked.

    Checks what Keras's MNIST arrays promise: images uint8 of shape (N, *image_shape), labels
    uint8 of shape (N,) in ``0 .. num_classes - 1``, the same N in both files.
    """
    x, y = load_idx(images_path), load_idx(labels_path)
    if x.dtype != np.uint8 or x.ndim != 1 + len(image_shape) or x.shape[1:] != image_shape:
        raise CorruptFileError(f"{os.fspath(images_path)}: expected uint8 images of shape "
                               f"(N, {', '.join(map(str, image_shape))}), got {x.dtype.name} "
                               f"{x.shape}")
    if y.dtype != np.uint8 or y.ndim != 1:
        raise CorruptFileError(f"{os.fspath(labels_path)}: expected uint8 labels of shape "
                               f"(N,), got {y.dtype.name} {y.shape}")
    if len(x) != len(y):
        raise CorruptFileError(f"{os.fspath(images_path)} has {len(x):,} images but "
                               f"{os.fspath(labels_path)} has {len(y):,} labels")
    if len(y) and int(y.max()) >= num_classes:
        bad = int(np.argmax(y >= num_classes))
        raise CorruptFileError(f"{os.fspath(labels_path)}: label {int(y[bad])} at index {bad} "
                               f"is not in 0..{num_classes - 1}")
    return x, y
