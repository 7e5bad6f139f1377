"""CIFAR-10: 32x32 colour images of 10 classes, from the "CIFAR-10 binary version".

``load_data()`` returns Keras's arrays: ``(x_train, y_train), (x_test, y_test)``, uint8, images
channels-last (50000, 32, 32, 3) and (10000, 32, 32, 3), labels (50000, 1) and (10000, 1) in
0..9 (:data:`CLASSES`). It reads the batches ``data_batch_1.bin`` .. ``data_batch_5.bin`` and
``test_batch.bin`` (each record: 1 label byte, then 1,024 red, 1,024 green and 1,024 blue
bytes, rows in order) from ``path``, else ``$UNIDL_DATA_DIR/cifar10/``, else
``~/.unidl/datasets/cifar10/``: loose there, in its ``cifar-10-batches-bin/`` folder (the
extracted archive), or straight from ``cifar-10-binary.tar.gz`` (read, not extracted), which is
downloaded when none of these is there (checked against :data:`SHA256`).

Keras downloads the Python (pickle) version instead; the binary version holds the same images
and labels and needs no unpickling.

Example:
    >>> from unidl.datasets import cifar10
    >>> (x_train, y_train), (x_test, y_test) = cifar10.load_data()  # doctest: +SKIP
    >>> x_train.shape, y_train.shape  # doctest: +SKIP
    ((50000, 32, 32, 3), (50000, 1))
"""

from __future__ import annotations

import os
import zlib

import numpy as np

from unidl.datasets.download import (
    CorruptFileError,
    Source,
    dataset_dir,
    download_files,
    find_file,
)

__all__ = ["load_data", "parse_batch", "SHA256", "SOURCE", "CLASSES", "ARCHIVE", "FOLDER",
           "TRAIN_BATCHES", "TEST_BATCH"]

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
           "truck")
ARCHIVE = "cifar-10-binary.tar.gz"
FOLDER = "cifar-10-batches-bin"
TRAIN_BATCHES = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
TEST_BATCH = "test_batch.bin"
_RECORD = 1 + 3 * 32 * 32

#: SHA-256 of https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz (170,052,171 bytes; the
#: page publishes its MD5, c32a1d4ab5d03f1284b67883e8d87530). Source: TensorFlow Datasets,
#: tensorflow_datasets/url_checksums/cifar10.txt, which downloads exactly this URL. (Keras
#: pins 6d958be0... for cifar-10-python.tar.gz, the pickle version: a different file.)
SHA256 = {
    ARCHIVE: "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd",
}

SOURCE = Source("cifar10", "CIFAR-10", "https://www.cs.toronto.edu/~kriz/", SHA256)


def parse_batch(data: bytes, name: str = "<bytes>"):
    """``(x, y)`` of one binary batch: x uint8 (N, 32, 32, 3), y uint8 (N, 1)."""
    if not data or len(data) % _RECORD:
        raise CorruptFileError(f"{name}: {len(data):,} bytes is not a whole number of "
                               f"{_RECORD:,}-byte CIFAR-10 records (1 label byte + 32x32x3 "
                               "pixels): truncated or corrupt")
    records = np.frombuffer(data, np.uint8).reshape(-1, _RECORD)
    labels = records[:, 0]
    if int(labels.max()) > 9:
        bad = int(np.argmax(labels > 9))
        raise CorruptFileError(f"{name}: record {bad} has label {int(labels[bad])}, not in "
                               "0..9: corrupt, or not a CIFAR-10 batch")
    x = records[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(x), labels.reshape(-1, 1).copy()


def _extracted(directory: str) -> dict | None:
    """Paths of all six batches, loose in ``directory`` or in its FOLDER; None if incomplete."""
    for folder in (directory, os.path.join(directory, FOLDER)):
        paths = {n: find_file(folder, (n,)) for n in TRAIN_BATCHES + (TEST_BATCH,)}
        if all(paths.values()):
            return paths
    return None


def _read_files(paths: dict) -> dict:
    """``{batch name: (where, bytes)}`` read from loose files."""
    out = {}
    for name, path in paths.items():
        try:
            with open(path, "rb") as fh:
                out[name] = (path, fh.read())
        except OSError as exc:
            raise CorruptFileError(f"{path}: cannot be read ({exc})") from None
    return out


def _read_archive(archive: str) -> dict:
    """``{batch name: (where, bytes)}`` read from the .tar.gz in one forward pass."""
    import tarfile

    wanted, out = set(TRAIN_BATCHES + (TEST_BATCH,)), {}
    try:
        with tarfile.open(archive, "r|gz") as tar:
            for member in tar:
                base = member.name.rsplit("/", 1)[-1]
                if member.isfile() and base in wanted and base not in out:
                    out[base] = (f"{archive}:{member.name}", tar.extractfile(member).read())
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise CorruptFileError(f"{archive}: truncated or corrupt archive ({exc})") from None
    missing = sorted(wanted - set(out))
    if missing:
        raise CorruptFileError(f"{archive}: the archive lacks {', '.join(missing)} (expected "
                               f"in {FOLDER}/): not the CIFAR-10 binary version, or cut short")
    return out


def _assemble(raw: dict):
    """Parse the six batches and check they hold the same number of records (10,000 each in
    the published set), so a batch cut at a record boundary is caught too."""
    parsed = {name: parse_batch(data, where) for name, (where, data) in raw.items()}
    counts = {name: len(parsed[name][1]) for name in parsed}
    first = TRAIN_BATCHES[0]
    for name in TRAIN_BATCHES[1:] + (TEST_BATCH,):
        if counts[name] != counts[first]:
            raise CorruptFileError(f"{raw[name][0]} has {counts[name]:,} records but "
                                   f"{raw[first][0]} has {counts[first]:,}: a CIFAR-10 batch "
                                   "is truncated or corrupt")
    x_train = np.concatenate([parsed[n][0] for n in TRAIN_BATCHES])
    y_train = np.concatenate([parsed[n][1] for n in TRAIN_BATCHES])
    return (x_train, y_train), parsed[TEST_BATCH]


def load_data(path=None, *, origin: str | None = None, sha256: dict | None = None,
              verbose: int = 1, download: bool = True):
    """``(x_train, y_train), (x_test, y_test)``: CIFAR-10 as Keras returns it (uint8,
    channels-last images, labels of shape (N, 1)).

    Args:
        path: directory holding the batches or the archive; default
            ``$UNIDL_DATA_DIR/cifar10`` or ``~/.unidl/datasets/cifar10``. The archive is
            downloaded into it when needed.
        origin: base URL to download ``cifar-10-binary.tar.gz`` from; default
            ``$UNIDL_DATASETS_MIRROR/cifar10/`` or the Toronto page.
        sha256: ``{file name: SHA-256}`` entries overriding :data:`SHA256`.
        verbose: 0 prints nothing; otherwise a progress bar (terminal) or a line per download.
        download: False never touches the network.

    Raises:
        DatasetNotFoundError, ChecksumError, CorruptFileError: as in
        :func:`unidl.datasets.mnist.load_data`.
    """
    directory = dataset_dir(SOURCE.name, path)
    paths = _extracted(directory)
    if paths is not None:
        return _assemble(_read_files(paths))
    archive = find_file(directory, (ARCHIVE,))
    if archive is None:
        wanted = (f"{ARCHIVE} (or its batches {', '.join(TRAIN_BATCHES)}, {TEST_BATCH}, "
                  f"loose or in {FOLDER}/)")
        (archive,) = download_files(SOURCE, directory, [ARCHIVE], wanted=wanted,
                                    origin=origin, sha256=sha256, verbose=verbose,
                                    download=download)
    return _assemble(_read_archive(archive))
