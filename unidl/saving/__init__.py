"""Saving and loading: whole models (``.unidl``), weights, and configs.

``model.save("m.unidl")`` / :func:`load_model` move a model (architecture, weights, compile
configuration, optimizer state) between processes and backends (``"m.keras"``: a Keras 3
file, :mod:`unidl.saving.keras`); ``save_weights`` /
``load_weights`` only the weights; :func:`serialize` / :func:`deserialize` any object with a
``get_config``; :func:`register_serializable` makes your own classes loadable by name.
Nothing loaded is ever executed: see ``docs/deployment.md``.
"""

from unidl.saving.files import SaveFileError, SaveFileNotFoundError
from unidl.saving.keras import KERAS_VERSION, KerasConfigError  # .keras files (Keras 3)
from unidl.saving.model_file import (
    FORMAT_VERSION,
    ModelFileError,
    clone_model,
    load_model,
    model_from_json,
    model_to_json,
    save_model,
)
from unidl.saving.registry import (
    SerializationError,
    deserialize,
    lookup,
    register_serializable,
    registered_name,
    serialize,
)
from unidl.saving.weights import (
    WEIGHTS_FORMATS,
    WeightsFileError,
    WeightsFileNotFoundError,
    weights_format,
)

__all__ = ["save_model", "load_model", "model_to_json", "model_from_json", "clone_model",
           "register_serializable", "registered_name", "lookup", "serialize", "deserialize",
           "SaveFileError", "SaveFileNotFoundError", "ModelFileError", "WeightsFileError",
           "WeightsFileNotFoundError", "SerializationError", "WEIGHTS_FORMATS",
           "weights_format", "FORMAT_VERSION", "KERAS_VERSION", "KerasConfigError"]
