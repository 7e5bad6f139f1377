"""Models: ``Model`` (functional or subclassed), ``Sequential`` and ``Input``; saving them
(``load_model``, ``model_from_json``, ``clone_model``; see :mod:`unidl.saving`)."""

from unidl.models.functional import Input
from unidl.models.model import Model
from unidl.models.sequential import Sequential
from unidl.saving.model_file import clone_model, load_model, model_from_json

__all__ = ["Input", "Model", "Sequential", "load_model", "model_from_json", "clone_model"]
