"""Datasets: small ones shipped with unidl (offline) and the standard ones, read from their
usual files and downloaded (resumable, SHA-256-checked) when absent.

``digits`` (embedded), ``mnist``, ``fashion_mnist`` and ``cifar10`` each have ``load_data()``
returning Keras's ``(x_train, y_train), (x_test, y_test)``. See docs/data.md.
"""

from unidl.datasets import cifar10, digits, fashion_mnist, mnist
from unidl.datasets.download import (
    ChecksumError,
    CorruptFileError,
    DatasetError,
    DatasetNotFoundError,
    DownloadError,
)

__all__ = ["digits", "mnist", "fashion_mnist", "cifar10", "DatasetError", "DownloadError",
           "ChecksumError", "CorruptFileError", "DatasetNotFoundError"]
