"""Fashion-MNIST (Zalando): 28x28 grey images of 10 kinds of clothing, in MNIST's IDX format.

``load_data()`` returns Keras's arrays: ``(x_train, y_train), (x_test, y_test)``, uint8, images
(60000, 28, 28) and (10000, 28, 28), labels (60000,) and (10000,) in 0..9 (:data:`CLASSES`).
The files have MNIST's names (``train-images-idx3-ubyte`` ... ``t10k-labels-idx1-ubyte``, plain
or ``.gz``) and are looked for in ``path``, else ``$UNIDL_DATA_DIR/fashion_mnist/``, else
``~/.unidl/datasets/fashion_mnist/``; missing ones are downloaded (checked against
:data:`SHA256`). Everything else is as in :mod:`unidl.datasets.mnist`, ``split=`` included.

Example:
    >>> from unidl.datasets import fashion_mnist
    >>> (x_train, y_train), (x_test, y_test) = fashion_mnist.load_data()  # doctest: +SKIP
    >>> fashion_mnist.CLASSES[int(y_train[0])]  # doctest: +SKIP
    'Ankle boot'
"""

from __future__ import annotations

from unidl.datasets.download import Source
from unidl.datasets.mnist import TEST_FILES, TRAIN_FILES, load_idx_dataset

__all__ = ["load_data", "SHA256", "SOURCE", "CLASSES", "TRAIN_FILES", "TEST_FILES"]

CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
           "Bag", "Ankle boot")

#: SHA-256 of Zalando's published files. Source: TensorFlow Datasets,
#: tensorflow_datasets/url_checksums/fashion_mnist.txt (for the originals at
#: http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/). The default download is the
#: copy Keras's fashion_mnist uses, https://storage.googleapis.com/tensorflow/tf-keras-datasets/,
#: for which Keras pins no hash; its download logs show the same sizes (in the comments), and
#: any byte that differed would be rejected by this check. The originals themselves:
#: load_data(origin="http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/").
SHA256 = {
    "train-images-idx3-ubyte.gz":
        "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",  # 26,421,880
    "train-labels-idx1-ubyte.gz":
        "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",  # 29,515
    "t10k-images-idx3-ubyte.gz":
        "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",  # 4,422,102
    "t10k-labels-idx1-ubyte.gz":
        "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",  # 5,148
}

SOURCE = Source("fashion_mnist", "Fashion-MNIST",
                "https://storage.googleapis.com/tensorflow/tf-keras-datasets/", SHA256)


def load_data(path=None, *, split: float | None = None, seed: int = 1337,
              origin: str | None = None, sha256: dict | None = None, verbose: int = 1,
              download: bool = True):
    """``(x_train, y_train), (x_test, y_test)``: Fashion-MNIST as Keras returns it (uint8).

    Arguments, errors and ``split`` as in :func:`unidl.datasets.mnist.load_data`; the default
    directory is ``$UNIDL_DATA_DIR/fashion_mnist`` (or ``~/.unidl/datasets/fashion_mnist``)
    and the default mirror ``$UNIDL_DATASETS_MIRROR/fashion_mnist/`` or the copy Keras uses.
    """
    return load_idx_dataset(SOURCE, path, split=split, seed=seed, origin=origin, sha256=sha256,
                            verbose=verbose, download=download, module="fashion_mnist")
