"""Optimizers: SGD, Adam, AdamW, RMSprop, Adagrad, Adadelta, Adamax, Nadam, Lion.

Keras 3 names and defaults; each docstring gives the exact update, which follows
``torch.optim`` wherever torch defines the same hyperparameters. State lives in
:class:`unidl.Variable` objects (``optimizer.variables``), built on the first step; the math
is written with :mod:`unidl.ops`, so every optimizer runs on every backend and inside
compiled functions.

Example:
    >>> import unidl
    >>> from unidl import optimizers
    >>> with unidl.use_backend("numpy"):
    ...     w = unidl.Variable([1.0, 2.0])
    ...     opt = optimizers.get("sgd")
    ...     opt.apply([[0.5, 0.5]], [w])
    ...     [round(float(x), 4) for x in w.numpy()], int(opt.iterations)
    ([0.995, 1.995], 1)
"""

from __future__ import annotations

from unidl.optimizers import schedules
from unidl.optimizers.adam import Adam, Adamax, AdamW, Nadam
from unidl.optimizers.adaptive import Adadelta, Adagrad, RMSprop
from unidl.optimizers.base import Optimizer
from unidl.optimizers.lion import Lion
from unidl.optimizers.sgd import SGD

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Adadelta", "Adamax",
           "Nadam", "Lion", "get", "schedules", "ALL"]

#: every optimizer by the name :func:`get` resolves
ALL = {"adam": Adam, "sgd": SGD, "rmsprop": RMSprop, "adagrad": Adagrad, "adadelta": Adadelta,
       "adamax": Adamax, "nadam": Nadam, "adamw": AdamW, "lion": Lion}


def get(identifier, **kwargs) -> Optimizer:
    """An optimizer from a name (``"adam"``, case-insensitive; ``kwargs`` go to its
    constructor) or an optimizer instance (returned as it is).

    Raises:
        ValueError: an unknown name (the message lists the known ones).
        TypeError: neither a string nor an Optimizer.
    """
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, str):
        cls = ALL.get(identifier.strip().lower())
        if cls is None:
            raise ValueError(f"unknown optimizer {identifier!r}; known optimizers are "
                             f"{', '.join(sorted(ALL))}")
        return cls(**kwargs)
    raise TypeError(f"cannot make an optimizer from a {type(identifier).__name__}; pass a name "
                    f"({', '.join(sorted(ALL))}) or an Optimizer")
