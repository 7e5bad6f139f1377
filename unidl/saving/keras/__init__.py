"""Keras 3 ``.keras`` files: ``unidl.load_model("m.keras")`` and ``model.save("m.keras")``.

* :mod:`~unidl.saving.keras.configs`: the mapping table of layer classes and argument values;
* :mod:`~unidl.saving.keras.graph`: Sequential and functional models, their layer calls and
  Keras' layer order;
* :mod:`~unidl.saving.keras.weights_h5`: ``model.weights.h5`` (h5py; install with
  ``pip install "unidl[keras]"``);
* :mod:`~unidl.saving.keras.compiling`: optimizer, loss, metrics and optimizer state;
* :mod:`~unidl.saving.keras.archive`: the zip archive.

Nothing in a file is executed: classes are unidl's own, ``custom_objects`` or registered
ones; ``Lambda`` layers and serialized functions (what Keras loads only with
``safe_mode=False``) are refused. See ``docs/deployment.md`` ("Keras files").
"""

from unidl.saving.keras.archive import KERAS_VERSION, load_keras_model, save_keras_model
from unidl.saving.keras.configs import KerasConfigError
from unidl.saving.keras.weights_h5 import MissingDependencyError

__all__ = ["KERAS_VERSION", "load_keras_model", "save_keras_model", "KerasConfigError",
           "MissingDependencyError"]
