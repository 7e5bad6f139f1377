"""Weight initializers (Keras 3 names, arguments and formulas).

An initializer is called as ``init(shape, dtype)`` and returns a **host NumPy array**: every
random draw comes from :func:`unidl.random.host_rng` (or from ``numpy.random.default_rng(seed)``
when the initializer was given a ``seed``), so after ``unidl.random.set_seed(s)`` the initial
weights are bit-identical on every backend. :meth:`unidl.layers.Layer.add_weight` converts the
array to the active backend.

Fans are computed as Keras does: a 1-D shape has ``fan_in = fan_out = shape[0]``; a 2-D shape
``(fan_in, fan_out)``; a convolution kernel ``(*receptive_field, in, out)`` has
``fan_in = in * prod(receptive_field)`` and ``fan_out = out * prod(receptive_field)``.
``*_normal`` variance-scaling initializers draw from a normal truncated at two standard
deviations, with the standard deviation divided by ``0.87962566103423978`` (the standard
deviation of the unit normal truncated to ``[-2, 2]``) so the variance is the one asked for.

Example:
    >>> from unidl import initializers
    >>> init = initializers.get("glorot_uniform")
    >>> w = init((4, 6), dtype="float32")
    >>> w.shape, str(w.dtype), bool(abs(w).max() <= (6 / (4 + 6)) ** 0.5)
    ((4, 6), 'float32', True)
    >>> initializers.get({"class_name": "Constant", "config": {"value": 2.0}})((2,)).tolist()
    [2.0, 2.0]
"""

from __future__ import annotations

import math

import numpy as np

from unidl import dtypes as _dt
from unidl.naming import resolve, snake_case

__all__ = [
    "Initializer",
    "Zeros",
    "Ones",
    "Constant",
    "RandomUniform",
    "RandomNormal",
    "TruncatedNormal",
    "VarianceScaling",
    "GlorotUniform",
    "GlorotNormal",
    "HeUniform",
    "HeNormal",
    "LecunUniform",
    "LecunNormal",
    "Orthogonal",
    "Identity",
    "zeros",
    "ones",
    "constant",
    "random_uniform",
    "random_normal",
    "truncated_normal",
    "variance_scaling",
    "glorot_uniform",
    "glorot_normal",
    "he_uniform",
    "he_normal",
    "lecun_uniform",
    "lecun_normal",
    "orthogonal",
    "identity",
    "compute_fans",
    "get",
    "serialize",
    "deserialize",
]

#: standard deviation of the unit normal truncated to [-2, 2] (as Keras).
_TRUNC_STD = 0.87962566103423978


def compute_fans(shape) -> tuple[float, float]:
    """``(fan_in, fan_out)`` of a weight of ``shape``, as Keras computes them."""
    shape = tuple(int(d) for d in shape)
    if len(shape) == 0:
        return 1.0, 1.0
    if len(shape) == 1:
        return float(shape[0]), float(shape[0])
    if len(shape) == 2:
        return float(shape[0]), float(shape[1])
    receptive = float(np.prod(shape[:-2], dtype=np.float64))
    return shape[-2] * receptive, shape[-1] * receptive


def _np_dtype(dtype):
    d = _dt.standardize(dtype) if dtype is not None else _dt.DEFAULT_FLOAT
    try:
        return _dt.numpy_dtype(d)
    except TypeError:  # bfloat16 without ml_dtypes: the Variable casts float32 itself
        return np.dtype("float32")


def _shape(shape) -> tuple:
    if isinstance(shape, (int, np.integer)):
        return (int(shape),)
    return tuple(int(d) for d in shape)


class Initializer:
    """Base class: ``__call__(shape, dtype=None) -> numpy.ndarray`` and ``get_config()``."""

    def __call__(self, shape, dtype=None) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__} must define __call__")

    def get_config(self) -> dict:
        return {}

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)

    def clone(self):
        return type(self).from_config(self.get_config())

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class _Seeded(Initializer):
    """An initializer drawing random numbers: from the host generator, or ``seed`` if given
    (a seeded initializer gives the same values at every call, as in Keras 3)."""

    def __init__(self, seed=None):
        if seed is not None and not isinstance(seed, (int, np.integer)):
            raise ValueError(f"{type(self).__name__}: expected an int seed or None, got "
                             f"{seed!r}")
        self.seed = None if seed is None else int(seed)

    def _rng(self) -> np.random.Generator:
        if self.seed is not None:
            return np.random.default_rng(self.seed)
        from unidl import random as _random

        return _random.host_rng()

    def get_config(self) -> dict:
        return {"seed": self.seed}


# ---- constants -----------------------------------------------------------------------------
class Zeros(Initializer):
    """All zeros."""

    def __call__(self, shape, dtype=None):
        return np.zeros(_shape(shape), dtype=_np_dtype(dtype))


class Ones(Initializer):
    """All ones."""

    def __call__(self, shape, dtype=None):
        return np.ones(_shape(shape), dtype=_np_dtype(dtype))


class Constant(Initializer):
    """Every element equal to ``value`` (a scalar, or an array broadcast to the shape)."""

    def __init__(self, value=0.0):
        if isinstance(value, np.ndarray):
            value = value.tolist()
        self.value = value

    def __call__(self, shape, dtype=None):
        v = np.asarray(self.value, dtype=np.float64 if _dt.is_float(
            _dt.standardize(dtype or _dt.DEFAULT_FLOAT)) else None)
        try:
            out = np.broadcast_to(v, _shape(shape))
        except ValueError:
            raise ValueError(f"Constant: cannot broadcast a value of shape {v.shape} to the "
                             f"weight shape {_shape(shape)}") from None
        return np.array(out, dtype=_np_dtype(dtype))

    def get_config(self):
        return {"value": self.value}


class Identity(Initializer):
    """``gain`` times the identity matrix (2-D shapes only)."""

    def __init__(self, gain=1.0):
        self.gain = float(gain)

    def __call__(self, shape, dtype=None):
        shape = _shape(shape)
        if len(shape) != 2:
            raise ValueError(f"Identity: expected a 2-D shape, got {shape}")
        return (self.gain * np.eye(*shape)).astype(_np_dtype(dtype))

    def get_config(self):
        return {"gain": self.gain}


# ---- plain random ----------------------------------------------------------------------------
class RandomUniform(_Seeded):
    """Uniform values in ``[minval, maxval)`` (Keras default ``-0.05 .. 0.05``)."""

    def __init__(self, minval=-0.05, maxval=0.05, seed=None):
        super().__init__(seed)
        self.minval, self.maxval = float(minval), float(maxval)

    def __call__(self, shape, dtype=None):
        return self._rng().uniform(self.minval, self.maxval, _shape(shape)).astype(
            _np_dtype(dtype))

    def get_config(self):
        return {"minval": self.minval, "maxval": self.maxval, **super().get_config()}


class RandomNormal(_Seeded):
    """Normal values (Keras default ``mean=0, stddev=0.05``)."""

    def __init__(self, mean=0.0, stddev=0.05, seed=None):
        super().__init__(seed)
        self.mean, self.stddev = float(mean), float(stddev)

    def __call__(self, shape, dtype=None):
        return self._rng().normal(self.mean, self.stddev, _shape(shape)).astype(
            _np_dtype(dtype))

    def get_config(self):
        return {"mean": self.mean, "stddev": self.stddev, **super().get_config()}


def _truncated(rng, shape, mean, stddev) -> np.ndarray:
    from unidl import random as _random

    return _random.host_truncated_normal(rng, shape, mean, stddev)


class TruncatedNormal(_Seeded):
    """Normal values redrawn until within two standard deviations of the mean (Keras default
    ``mean=0, stddev=0.05``)."""

    def __init__(self, mean=0.0, stddev=0.05, seed=None):
        super().__init__(seed)
        self.mean, self.stddev = float(mean), float(stddev)

    def __call__(self, shape, dtype=None):
        return _truncated(self._rng(), _shape(shape), self.mean, self.stddev).astype(
            _np_dtype(dtype))

    def get_config(self):
        return {"mean": self.mean, "stddev": self.stddev, **super().get_config()}


class VarianceScaling(_Seeded):
    """Values with variance ``scale / n``, ``n`` the fan picked by ``mode``.

    Args:
        scale: positive factor.
        mode: ``"fan_in"``, ``"fan_out"`` or ``"fan_avg"``.
        distribution: ``"truncated_normal"`` (stddev ``sqrt(scale / n) / 0.8796...``),
            ``"untruncated_normal"`` (stddev ``sqrt(scale / n)``) or ``"uniform"`` (in
            ``[-sqrt(3 scale / n), sqrt(3 scale / n)]``).
        seed: an int for values that repeat at every call; default: the host generator.
    """

    _MODES = ("fan_in", "fan_out", "fan_avg")
    _DISTS = ("truncated_normal", "untruncated_normal", "uniform")

    def __init__(self, scale=1.0, mode="fan_in", distribution="truncated_normal", seed=None):
        super().__init__(seed)
        if scale <= 0.0:
            raise ValueError(f"VarianceScaling: expected a positive scale, got {scale!r}")
        mode = str(mode).lower()
        if mode not in self._MODES:
            raise ValueError(f"VarianceScaling: expected mode in {self._MODES}, got {mode!r}")
        distribution = str(distribution).lower()
        if distribution == "normal":  # Keras 2 alias
            distribution = "truncated_normal"
        if distribution not in self._DISTS:
            raise ValueError(f"VarianceScaling: expected distribution in {self._DISTS}, got "
                             f"{distribution!r}")
        self.scale, self.mode, self.distribution = float(scale), mode, distribution

    def __call__(self, shape, dtype=None):
        shape = _shape(shape)
        fan_in, fan_out = compute_fans(shape)
        n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2.0}[
            self.mode]
        scale = self.scale / max(1.0, n)
        rng = self._rng()
        if self.distribution == "truncated_normal":
            out = _truncated(rng, shape, 0.0, math.sqrt(scale) / _TRUNC_STD)
        elif self.distribution == "untruncated_normal":
            out = rng.normal(0.0, math.sqrt(scale), shape)
        else:
            limit = math.sqrt(3.0 * scale)
            out = rng.uniform(-limit, limit, shape)
        return out.astype(_np_dtype(dtype))

    def get_config(self):
        return {"scale": self.scale, "mode": self.mode, "distribution": self.distribution,
                **super().get_config()}


class _Preset(VarianceScaling):
    _preset: tuple = ()

    def __init__(self, seed=None):
        scale, mode, distribution = self._preset
        super().__init__(scale, mode, distribution, seed)

    def get_config(self):
        return {"seed": self.seed}


class GlorotUniform(_Preset):
    """Uniform in ``[-l, l]``, ``l = sqrt(6 / (fan_in + fan_out))`` (Xavier uniform)."""

    _preset = (1.0, "fan_avg", "uniform")


class GlorotNormal(_Preset):
    """Truncated normal with variance ``2 / (fan_in + fan_out)`` (Xavier normal)."""

    _preset = (1.0, "fan_avg", "truncated_normal")


class HeUniform(_Preset):
    """Uniform in ``[-l, l]``, ``l = sqrt(6 / fan_in)``."""

    _preset = (2.0, "fan_in", "uniform")


class HeNormal(_Preset):
    """Truncated normal with variance ``2 / fan_in``."""

    _preset = (2.0, "fan_in", "truncated_normal")


class LecunUniform(_Preset):
    """Uniform in ``[-l, l]``, ``l = sqrt(3 / fan_in)``."""

    _preset = (1.0, "fan_in", "uniform")


class LecunNormal(_Preset):
    """Truncated normal with variance ``1 / fan_in``."""

    _preset = (1.0, "fan_in", "truncated_normal")


class Orthogonal(_Seeded):
    """A (semi-)orthogonal matrix times ``gain``, from the QR decomposition of a normal one.

    A shape of rank > 2 is treated as ``(prod(shape[:-1]), shape[-1])`` and reshaped back.
    """

    def __init__(self, gain=1.0, seed=None):
        super().__init__(seed)
        self.gain = float(gain)

    def __call__(self, shape, dtype=None):
        shape = _shape(shape)
        if len(shape) < 2:
            raise ValueError(f"Orthogonal: expected a shape of rank >= 2, got {shape}")
        rows = int(np.prod(shape[:-1], dtype=np.int64))
        cols = shape[-1]
        a = self._rng().normal(0.0, 1.0, (max(rows, cols), min(rows, cols)))
        q, r = np.linalg.qr(a)
        d = np.sign(np.diag(r))
        q = q * np.where(d == 0, 1.0, d)
        if rows < cols:
            q = q.T
        return (self.gain * q.reshape(shape)).astype(_np_dtype(dtype))

    def get_config(self):
        return {"gain": self.gain, **super().get_config()}


# ---- snake_case names, Keras style -------------------------------------------------------------
zeros = Zeros
ones = Ones
constant = Constant
random_uniform = RandomUniform
random_normal = RandomNormal
truncated_normal = TruncatedNormal
variance_scaling = VarianceScaling
glorot_uniform = GlorotUniform
glorot_normal = GlorotNormal
he_uniform = HeUniform
he_normal = HeNormal
lecun_uniform = LecunUniform
lecun_normal = LecunNormal
orthogonal = Orthogonal
identity = Identity

_CLASSES = (Zeros, Ones, Constant, Identity, RandomUniform, RandomNormal, TruncatedNormal,
            VarianceScaling, GlorotUniform, GlorotNormal, HeUniform, HeNormal, LecunUniform,
            LecunNormal, Orthogonal)


_REGISTRY: dict = {}
for _cls in _CLASSES:
    _REGISTRY[_cls.__name__] = _cls
    _REGISTRY[snake_case(_cls.__name__)] = _cls
_REGISTRY.update({"uniform": RandomUniform, "normal": RandomNormal, "one": Ones, "zero": Zeros,
                  "OrthogonalInitializer": Orthogonal, "IdentityInitializer": Identity,
                  "xavier_uniform": GlorotUniform, "xavier_normal": GlorotNormal})


def serialize(initializer) -> dict:
    """``{"class_name": ..., "config": ...}`` of an initializer object."""
    if not isinstance(initializer, Initializer):
        raise ValueError(f"cannot serialize {initializer!r}: not a unidl initializer")
    return {"class_name": type(initializer).__name__, "config": initializer.get_config()}


def deserialize(config: dict, custom_objects=None):
    """The initializer described by ``{"class_name": ..., "config": ...}``."""
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError(f"expected a dict with 'class_name' (and 'config'), got {config!r}")
    name = config["class_name"]
    cls = (custom_objects or {}).get(name) or _REGISTRY.get(name) or _REGISTRY.get(snake_case(name))
    if cls is None:
        raise ValueError(_unknown(name))
    return cls(**dict(config.get("config") or {}))


def _unknown(name) -> str:
    known = sorted({snake_case(c.__name__) for c in _CLASSES} | {"uniform", "normal"})
    return f"unknown initializer {name!r}; known names: {', '.join(known)}"


def get(identifier):
    """An initializer from a name (``"he_normal"`` or ``"HeNormal"``), a config dict, an
    initializer object or class, or any callable ``(shape, dtype) -> array``.

    ``None`` gives ``None``; an unknown name raises ValueError listing the known ones.
    """
    return resolve(identifier, base=Initializer, registry=_REGISTRY, deserialize=deserialize,
                   unknown=_unknown, what="an initializer",
                   callable_means="an Initializer or a callable (shape, dtype) -> array")
