"""Models: ``Model`` (functional or subclassed), ``Sequential`` and ``Input``."""

from unidl.models.functional import Input
from unidl.models.model import Model
from unidl.models.sequential import Sequential

__all__ = ["Input", "Model", "Sequential"]
