"""Reading MNIST-style IDX files (optionally gzipped), e.g. the MNIST test set.

unidl does not download anything: point :func:`load_idx` or :func:`load_data` at files you
have. Corrupt or truncated files raise a ValueError that names the file.
"""

from __future__ import annotations

import gzip
import os

import numpy as np

__all__ = ["load_idx", "load_data"]

_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def load_idx(path) -> np.ndarray:
    """Read one IDX file (``.gz`` allowed) into a NumPy array."""
    path = os.fspath(path)
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as fh:
            data = fh.read()
    except (OSError, EOFError) as exc:
        raise ValueError(f"cannot read IDX file {path!r}: {exc}") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _TYPES:
        raise ValueError(f"{path!r} is not an IDX file (bad magic number)")
    ndim = data[3]
    header = 4 + 4 * ndim
    dims = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_TYPES[data[2]])
    expected = header + int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(data) != expected:
        raise ValueError(f"{path!r} is truncated or corrupt: {len(data)} bytes, expected "
                         f"{expected} for shape {dims}")
    flat = np.frombuffer(data, dtype=dtype, offset=header)
    return flat.reshape(dims).astype(dtype.newbyteorder("="))


def load_data(directory, prefix: str = "t10k", split: float | None = 0.2, seed: int = 1337):
    """Load ``{prefix}-images-idx3-ubyte[.gz]`` and labels from ``directory``.

    With ``split`` set, returns ``(x_train, y_train), (x_test, y_test)`` from a fixed
    shuffle (e.g. the 10,000-image MNIST test set as 8,000/2,000); with ``split=None``,
    ``(x, y)``.
    """
    def find(kind):
        for suffix in ("", ".gz"):
            p = os.path.join(os.fspath(directory), f"{prefix}-{kind}-ubyte{suffix}")
            if os.path.exists(p):
                return p
        raise FileNotFoundError(f"no {prefix}-{kind}-ubyte[.gz] in {directory!r}")

    x = load_idx(find("images-idx3"))
    y = load_idx(find("labels-idx1")).astype(np.int64)
    if len(x) != len(y):
        raise ValueError(f"{len(x)} images but {len(y)} labels in {directory!r}")
    if split is None:
        return x, y
    order = np.random.default_rng(seed).permutation(len(x))
    x, y = x[order], y[order]
    cut = len(x) - int(round(len(x) * split))
    return (x[:cut], y[:cut]), (x[cut:], y[cut:])
