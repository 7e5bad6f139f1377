"""The 8x8 handwritten digits (UCI "Optical Recognition of Handwritten Digits", test part;
the same 1,797 images scikit-learn ships), stored inside the package so examples and tests run
offline.

Images are integers 0..16 (uint8, shape (8, 8)); labels 0..9. Source: E. Alpaydin and
C. Kaynak, UCI Machine Learning Repository (CC BY 4.0).

Example:
    >>> from unidl.datasets import digits
    >>> (x_train, y_train), (x_test, y_test) = digits.load_data()
    >>> x_train.shape, x_test.shape, int(x_train.max())
    ((1437, 8, 8), (360, 8, 8), 16)
"""

from __future__ import annotations

from importlib import resources

import numpy as np

__all__ = ["load_data", "NUM_SAMPLES"]

NUM_SAMPLES = 1797


def _raw():
    with resources.files("unidl.datasets").joinpath("data/digits.npz").open("rb") as fh:
        with np.load(fh, allow_pickle=False) as data:
            return data["images"].copy(), data["labels"].copy()


def load_data(test_split: float = 0.2, seed: int = 1337):
    """``(x_train, y_train), (x_test, y_test)``: a fixed, shuffled split of the 1,797 images.

    Args:
        test_split: fraction held out for testing (default 0.2: 1,437 / 360).
        seed: seed of the shuffle that makes the split (fixed by default, so the split is
            the same everywhere).
    """
    if not 0.0 < test_split < 1.0:
        raise ValueError(f"test_split must be in (0, 1), got {test_split}")
    x, y = _raw()
    order = np.random.default_rng(seed).permutation(len(x))
    x, y = x[order], y[order].astype(np.int64)
    cut = len(x) - int(np.ceil(len(x) * test_split))
    return (x[:cut], y[:cut]), (x[cut:], y[cut:])
