"""Weight constraints (Keras names and semantics): applied to a weight after every optimizer
step, ``w <- constraint(w)``.

Give one to a layer (``Dense(4, kernel_constraint="non_neg")``,
``kernel_constraint=constraints.MaxNorm(2.0)``) or to ``Layer.add_weight(constraint=...)``;
the optimizer applies it after each update. Any callable ``w -> w`` works too; the classes
here also save and load with the model (``get_config``/``from_config``).

Example:
    >>> import unidl
    >>> from unidl import constraints, ops
    >>> with unidl.use_backend("numpy"):
    ...     ops.to_numpy(constraints.NonNeg()(ops.convert_to_tensor([-1.0, 2.0]))).tolist()
    [0.0, 2.0]
"""

from __future__ import annotations

from unidl import ops
from unidl.naming import resolve, snake_case

__all__ = ["Constraint", "MaxNorm", "MinMaxNorm", "NonNeg", "UnitNorm", "get", "serialize",
           "deserialize"]

_EPSILON = 1e-7  # as Keras: keeps the division finite for an all-zero weight


class Constraint:
    """Base class: ``__call__(w) -> w`` projected onto the constraint's set."""

    def __call__(self, w):
        return w

    def get_config(self) -> dict:
        return {}

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


def _norms(w, axis):
    return ops.sqrt(ops.sum(ops.square(w), axis=axis, keepdims=True))


class MaxNorm(Constraint):
    """Rescale the slices along ``axis`` whose L2 norm exceeds ``max_value`` to that norm
    (``axis=0``: each output unit's incoming weights of a Dense kernel)."""

    def __init__(self, max_value=2.0, axis=0):
        self.max_value, self.axis = float(max_value), axis

    def __call__(self, w):
        norms = _norms(w, self.axis)
        desired = ops.clip(norms, 0.0, self.max_value)
        return ops.multiply(w, ops.divide(desired, ops.add(norms, _EPSILON)))

    def get_config(self):
        return {"max_value": self.max_value, "axis": self.axis}


class MinMaxNorm(Constraint):
    """Keep the L2 norm of each slice along ``axis`` in ``[min_value, max_value]``, moving it
    ``rate`` of the way there per step (``rate=1``: all the way)."""

    def __init__(self, min_value=0.0, max_value=1.0, rate=1.0, axis=0):
        self.min_value, self.max_value = float(min_value), float(max_value)
        self.rate, self.axis = float(rate), axis

    def __call__(self, w):
        norms = _norms(w, self.axis)
        clipped = ops.clip(norms, self.min_value, self.max_value)
        desired = ops.add(ops.multiply(clipped, self.rate), ops.multiply(norms, 1.0 - self.rate))
        return ops.multiply(w, ops.divide(desired, ops.add(norms, _EPSILON)))

    def get_config(self):
        return {"min_value": self.min_value, "max_value": self.max_value, "rate": self.rate,
                "axis": self.axis}


class NonNeg(Constraint):
    """Negative entries become zero."""

    def __call__(self, w):
        return ops.multiply(w, ops.cast(ops.greater_equal(w, 0.0), ops.dtype(w)))


class UnitNorm(Constraint):
    """Each slice along ``axis`` scaled to L2 norm 1."""

    def __init__(self, axis=0):
        self.axis = axis

    def __call__(self, w):
        return ops.divide(w, ops.add(_norms(w, self.axis), _EPSILON))

    def get_config(self):
        return {"axis": self.axis}


_CLASSES = (MaxNorm, MinMaxNorm, NonNeg, UnitNorm)
_REGISTRY = {name: cls for cls in _CLASSES for name in (cls.__name__, snake_case(cls.__name__))}
_REGISTRY.update({"max_norm": MaxNorm, "min_max_norm": MinMaxNorm, "non_neg": NonNeg,
                  "unit_norm": UnitNorm})


def serialize(constraint) -> dict | None:
    """``{"class_name", "config"}`` of a constraint (None stays None)."""
    if constraint is None:
        return None
    if not isinstance(constraint, Constraint):
        raise ValueError(f"cannot serialize {constraint!r}: not a unidl constraint (a plain "
                         "callable holds code, which unidl never saves; subclass "
                         "unidl.constraints.Constraint and register it with "
                         "@unidl.saving.register_serializable())")
    return {"class_name": type(constraint).__name__, "config": constraint.get_config()}


def deserialize(config: dict, custom_objects=None):
    """The constraint a :func:`serialize` dict describes."""
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError(f"expected a dict with 'class_name' (and 'config'), got {config!r}")
    name = config["class_name"]
    cls = (custom_objects or {}).get(name) or _REGISTRY.get(name) or _registered(name)
    if cls is None:
        raise ValueError(_unknown(name))
    return cls.from_config(dict(config.get("config") or {}))


def _registered(name):
    from unidl.saving.registry import lookup

    return lookup(name)


def _unknown(name) -> str:
    return (f"unknown constraint {name!r}; known names: "
            f"{', '.join(sorted({snake_case(c.__name__) for c in _CLASSES}))}")


def get(identifier):
    """A constraint from a name (``"non_neg"``, ``"MaxNorm"``), a config dict, a constraint
    object or class, or any callable ``w -> w``; ``None`` gives ``None``."""
    return resolve(identifier, base=Constraint, registry=_REGISTRY, deserialize=deserialize,
                   unknown=_unknown, what="a constraint",
                   callable_means="a Constraint or a callable w -> w")
