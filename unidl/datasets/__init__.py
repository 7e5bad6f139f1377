"""Small datasets shipped with unidl (offline) and loaders for standard file formats."""

from unidl.datasets import digits, mnist

__all__ = ["digits", "mnist"]
