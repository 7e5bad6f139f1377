"""Names derived from class names, as Keras users know them.

Example:
    >>> from unidl.naming import snake_case
    >>> [snake_case(n) for n in ("Conv2D", "MaxPooling2D", "SimpleRNN", "L1L2", "GlorotUniform")]
    ['conv2d', 'max_pooling2d', 'simple_rnn', 'l1_l2', 'glorot_uniform']
"""

from __future__ import annotations

import re

__all__ = ["snake_case"]

_WORD = re.compile(r"(.)([A-Z][a-z]+)")        # "MaxPooling" -> "Max_Pooling"
_HUMP = re.compile(r"([a-z0-9])([A-Z])")       # "SimpleRNN" -> "Simple_RNN", "L1L2" -> "L1_L2"
_DIMS = re.compile(r"(\d)_d(?=_|$)")           # "conv2_d" -> "conv2d" (a 1D/2D/3D suffix)


def snake_case(name: str) -> str:
    """``name`` (a class name) in snake case; a ``1D``/``2D``/``3D`` suffix stays whole."""
    return _DIMS.sub(r"\1d", _HUMP.sub(r"\1_\2", _WORD.sub(r"\1_\2", name)).lower())


def resolve(identifier, *, base: type, registry: dict, deserialize, unknown, what: str,
            callable_means: str):
    """The object an ``identifier`` names, as the ``get`` of initializers, regularizers and
    constraints read it: ``None``; an instance of ``base``; a config dict (``deserialize``);
    a name in ``registry`` (as given or in snake case; else ``ValueError(unknown(name))``);
    a subclass of ``base`` (instantiated); any other callable (used as it is).

    Example:
        >>> from unidl import initializers
        >>> type(initializers.get("HeNormal")).__name__
        'HeNormal'
    """
    if identifier is None or isinstance(identifier, base):
        return identifier
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, str):
        make = registry.get(identifier) or registry.get(snake_case(identifier))
        if make is None:
            raise ValueError(unknown(identifier))
        return make()
    if isinstance(identifier, type) and issubclass(identifier, base):
        return identifier()
    if callable(identifier):
        return identifier
    raise ValueError(f"cannot interpret {identifier!r} as {what}: expected a name, a config "
                     f"dict, {callable_means}")
