"""MNIST handwritten digits, from the standard IDX files (gzipped or not), downloaded when absent.

``load_data()`` returns Keras's arrays: ``(x_train, y_train), (x_test, y_test)``, uint8, images
(60000, 28, 28) and (10000, 28, 28), labels (60000,) and (10000,) in 0..9. It reads
``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte`` and
``t10k-labels-idx1-ubyte`` (each plain or ``.gz``) from ``path``, else
``$UNIDL_DATA_DIR/mnist/``, else ``~/.unidl/datasets/mnist/``, and downloads the missing ones
(checked against :data:`SHA256`; see :mod:`unidl.datasets.download`).

With only the test files at hand (e.g. ``UNIDL_DATA_DIR=../shared/data`` in this repository),
``load_data()`` raises :class:`~unidl.datasets.download.DatasetNotFoundError` naming the
missing training files, and ``load_data(split=0.2)`` uses the 10,000 test images alone: a
fixed shuffle split 8,000 / 2,000, which needs (and downloads) only the test files.

Example:
    >>> from unidl.datasets import mnist
    >>> (x_train, y_train), (x_test, y_test) = mnist.load_data()  # doctest: +SKIP
    >>> x_train.shape, y_train.shape, x_test.shape  # doctest: +SKIP
    ((60000, 28, 28), (60000,), (10000, 28, 28))
"""

from __future__ import annotations

import numpy as np

from unidl.datasets.download import Source, dataset_dir, download_files, find_file
from unidl.datasets.idx import load_idx, load_image_label_pair

__all__ = ["load_data", "load_idx", "load_idx_dataset", "SHA256", "SOURCE", "TRAIN_FILES",
           "TEST_FILES"]

TRAIN_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte")
TEST_FILES = ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")

#: SHA-256 of each file at https://storage.googleapis.com/cvdf-datasets/mnist/ (Google's copy
#: of Y. LeCun's files). Source: TensorFlow Datasets, tensorflow_datasets/url_checksums/
#: mnist.txt (URL, size, SHA-256 of exactly these URLs); the same values are pinned for the
#: LeCun originals and PyTorch's S3 mirror (ossci-datasets) in other public projects. Keras
#: pins only its mnist.npz (731c5ac6...), a different file. Sizes are in the comments.
SHA256 = {
    "train-images-idx3-ubyte.gz":
        "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",  # 9,912,422
    "train-labels-idx1-ubyte.gz":
        "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",  # 28,881
    "t10k-images-idx3-ubyte.gz":
        "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",  # 1,648,877
    "t10k-labels-idx1-ubyte.gz":
        "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",  # 4,542
}

SOURCE = Source("mnist", "MNIST", "https://storage.googleapis.com/cvdf-datasets/mnist/", SHA256)


def _split(x, y, split: float, seed: int):
    """A fixed shuffled split of ``(x, y)``: the last ``round(len * split)`` are the test part."""
    order = np.random.default_rng(seed).permutation(len(x))
    x, y = x[order], y[order]
    cut = len(x) - int(round(len(x) * split))
    return (x[:cut], y[:cut]), (x[cut:], y[cut:])


def _locate(source: Source, directory: str, names, *, hint: str, **download) -> dict:
    """Path of each IDX file in ``names`` (plain or .gz), downloading the missing ones."""
    found = {n: find_file(directory, (n, n + ".gz")) for n in names}
    missing = [n for n in names if found[n] is None]
    if missing:
        listed = [f"{n}[.gz]" for n in missing]
        wanted = ", ".join(listed[:-1]) + " and " * (len(listed) > 1) + listed[-1]
        got = download_files(source, directory, [n + ".gz" for n in missing], wanted=wanted,
                             hint=hint, **download)
        found.update(zip(missing, got))
    return found


def _test_only_hint(directory: str, title: str, module: str) -> str:
    """Advice when the test files are there but the training files are not."""
    if not all(find_file(directory, (n, n + ".gz")) for n in TEST_FILES):
        return ""
    return (f"The {title} test files are in {directory}: {module}.load_data(split=0.2) "
            "splits the test set alone (fixed shuffle, 80 % / 20 %) without the training files.")


def load_idx_dataset(source: Source, path=None, *, split=None, seed=1337, origin=None,
                     sha256=None, verbose=1, download=True, module="mnist"):
    """The loader behind :func:`load_data`, shared with Fashion-MNIST (same files, same
    layout); ``source`` says where the files come from and how they are pinned."""
    directory = dataset_dir(source.name, path)
    opts = dict(origin=origin, sha256=sha256, verbose=verbose, download=download)
    if split is not None:
        if not 0.0 < split < 1.0:
            raise ValueError(f"split must be in (0, 1) or None, got {split}")
        found = _locate(source, directory, TEST_FILES, hint="", **opts)
        return _split(*load_image_label_pair(*(found[n] for n in TEST_FILES)), split, seed)
    hint = _test_only_hint(directory, source.title, module)
    found = _locate(source, directory, TRAIN_FILES + TEST_FILES, hint=hint, **opts)
    train = load_image_label_pair(*(found[n] for n in TRAIN_FILES))
    test = load_image_label_pair(*(found[n] for n in TEST_FILES))
    return train, test


def load_data(path=None, *, split: float | None = None, seed: int = 1337,
              origin: str | None = None, sha256: dict | None = None, verbose: int = 1,
              download: bool = True):
    """``(x_train, y_train), (x_test, y_test)``: MNIST as Keras returns it (uint8 arrays).

    Args:
        path: directory holding the IDX files; default ``$UNIDL_DATA_DIR/mnist`` or
            ``~/.unidl/datasets/mnist``. Missing files are downloaded into it.
        split: None (default) for the 60,000 / 10,000 train and test sets; a fraction in
            (0, 1) to use only the 10,000 test images, split by a fixed shuffle (0.2: 8,000
            train / 2,000 test), needing only the ``t10k-*`` files.
        seed: seed of that shuffle.
        origin: base URL to download from (``origin + file name``); default
            ``$UNIDL_DATASETS_MIRROR/mnist/`` or Google's public copy.
        sha256: ``{file name: SHA-256}`` entries overriding :data:`SHA256` (for a mirror that
            serves other bytes, or test files).
        verbose: 0 prints nothing; otherwise a progress bar (terminal) or a line per download.
        download: False never touches the network: missing files are an error.

    Raises:
        DatasetNotFoundError: files missing and not downloadable (names them, the directory,
            and the variables that choose the directory and the mirror).
        ChecksumError: a download did not match its SHA-256 (it was not kept).
        CorruptFileError: a local file is truncated or corrupt (names it and what is wrong).
    """
    return load_idx_dataset(SOURCE, path, split=split, seed=seed, origin=origin, sha256=sha256,
                            verbose=verbose, download=download, module="mnist")
