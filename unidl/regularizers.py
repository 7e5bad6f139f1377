"""Weight regularizers (Keras 3 names and formulas).

A regularizer is called on a weight and returns a scalar tensor (computed with
:mod:`unidl.ops`, so it is differentiable on every backend); a layer's weight penalties are
listed in :attr:`unidl.layers.Layer.losses` and added to the training loss.

* ``L1(l1=0.01)``: ``l1 * sum(|w|)``
* ``L2(l2=0.01)``: ``l2 * sum(w ** 2)``
* ``L1L2(l1=0.0, l2=0.0)``: both terms. The string names ``"l1"``, ``"l2"`` and ``"l1_l2"``
  give factors of 0.01 (for ``"l1_l2"`` both, as ``keras.regularizers.l1_l2()`` did; the
  ``L1L2`` class itself keeps Keras 3's zero defaults).
* ``OrthogonalRegularizer(factor=0.01, mode="rows")``: penalizes non-orthogonal rows/columns.

Example:
    >>> import unidl
    >>> from unidl import ops, regularizers
    >>> with unidl.use_backend("numpy"):
    ...     reg = regularizers.get("l2")
    ...     round(float(reg(ops.convert_to_tensor([1.0, -2.0]))), 4)
    0.05
"""

from __future__ import annotations

from unidl.naming import resolve, snake_case

__all__ = ["Regularizer", "L1", "L2", "L1L2", "OrthogonalRegularizer", "l1", "l2", "l1_l2",
           "orthogonal_regularizer", "get", "serialize", "deserialize"]


def _ops():
    from unidl import ops

    return ops


def _factor(name, value) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"expected a number for {name}, got {value!r}") from None
    if v != v or v < 0.0 or v == float("inf"):
        raise ValueError(f"expected a finite non-negative {name}, got {value!r}")
    return v


class Regularizer:
    """Base class: ``__call__(weight) -> scalar tensor`` and ``get_config()``."""

    def __call__(self, x):
        return 0.0

    def get_config(self) -> dict:
        return {}

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class L1(Regularizer):
    """``l1 * sum(abs(w))``."""

    def __init__(self, l1=0.01):
        self.l1 = _factor("l1", l1)

    def __call__(self, x):
        ops = _ops()
        return ops.multiply(ops.sum(ops.abs(x)), self.l1)

    def get_config(self):
        return {"l1": self.l1}


class L2(Regularizer):
    """``l2 * sum(square(w))``."""

    def __init__(self, l2=0.01):
        self.l2 = _factor("l2", l2)

    def __call__(self, x):
        ops = _ops()
        return ops.multiply(ops.sum(ops.square(x)), self.l2)

    def get_config(self):
        return {"l2": self.l2}


class L1L2(Regularizer):
    """``l1 * sum(abs(w)) + l2 * sum(square(w))`` (Keras 3 defaults: both 0)."""

    def __init__(self, l1=0.0, l2=0.0):
        self.l1 = _factor("l1", l1)
        self.l2 = _factor("l2", l2)

    def __call__(self, x):
        ops = _ops()
        out = None
        if self.l1:
            out = ops.multiply(ops.sum(ops.abs(x)), self.l1)
        if self.l2:
            t = ops.multiply(ops.sum(ops.square(x)), self.l2)
            out = t if out is None else ops.add(out, t)
        if out is None:
            out = ops.multiply(ops.sum(x), 0.0)
        return out

    def get_config(self):
        return {"l1": self.l1, "l2": self.l2}


class OrthogonalRegularizer(Regularizer):
    """Pushes the rows (``mode="rows"``) or columns (``"columns"``) of a 2-D weight towards
    orthonormality: ``factor * mean(|<v_i, v_j>|)`` over pairs ``i < j`` of L2-normalized
    vectors (as Keras)."""

    def __init__(self, factor=0.01, mode="rows"):
        self.factor = _factor("factor", factor)
        if mode not in ("rows", "columns"):
            raise ValueError(f"expected mode 'rows' or 'columns', got {mode!r}")
        self.mode = mode

    def __call__(self, x):
        ops = _ops()
        shape = tuple(ops.shape(x))
        if len(shape) != 2:
            raise ValueError(f"OrthogonalRegularizer: expected a 2-D weight, got shape {shape}")
        axis = 1 if self.mode == "rows" else 0
        norm = ops.sqrt(ops.maximum(ops.sum(ops.square(x), axis, True), 1e-12))
        v = ops.divide(x, norm)
        prod = ops.matmul(v, ops.transpose(v)) if axis == 1 else \
            ops.matmul(ops.transpose(v), v)
        size = shape[1 - axis]
        if size < 2:
            return ops.multiply(ops.sum(x), 0.0)
        off = ops.multiply(prod, ops.subtract(1.0, ops.eye(size, dtype=ops.dtype(x))))
        pairs = size * (size - 1) / 2.0
        return ops.multiply(ops.sum(ops.abs(off)), self.factor * 0.5 / pairs)

    def get_config(self):
        return {"factor": self.factor, "mode": self.mode}


def l1(l1=0.01):  # noqa: D103 - Keras-style factory
    return L1(l1)


def l2(l2=0.01):  # noqa: D103
    return L2(l2)


def l1_l2(l1=0.01, l2=0.01):  # noqa: D103
    return L1L2(l1, l2)


orthogonal_regularizer = OrthogonalRegularizer

_CLASSES = (L1, L2, L1L2, OrthogonalRegularizer)


_REGISTRY: dict = {c.__name__: c for c in _CLASSES}
_REGISTRY.update({"l1": l1, "l2": l2, "l1_l2": l1_l2, "l1l2": l1_l2,
                  "orthogonal_regularizer": OrthogonalRegularizer})


def _unknown(name) -> str:
    return (f"unknown regularizer {name!r}; known names: "
            f"{', '.join(sorted(_REGISTRY, key=str.lower))}")


def serialize(regularizer) -> dict:
    if not isinstance(regularizer, Regularizer):
        raise ValueError(f"cannot serialize {regularizer!r}: not a unidl regularizer")
    return {"class_name": type(regularizer).__name__, "config": regularizer.get_config()}


def deserialize(config: dict, custom_objects=None):
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError(f"expected a dict with 'class_name' (and 'config'), got {config!r}")
    name = config["class_name"]
    cls = (custom_objects or {}).get(name) or _REGISTRY.get(name) or _REGISTRY.get(snake_case(name))
    if cls is None:
        raise ValueError(_unknown(name))
    return cls(**dict(config.get("config") or {}))


def get(identifier):
    """A regularizer from a name (``"l2"``, ``"L1L2"``), a config dict, a regularizer object
    or class, or any callable ``weight -> scalar``; ``None`` gives ``None``."""
    return resolve(identifier, base=Regularizer, registry=_REGISTRY, deserialize=deserialize,
                   unknown=_unknown, what="a regularizer",
                   callable_means="a Regularizer or a callable weight -> scalar")
