"""Portable randomness: the same seed gives the same numbers on every backend.

Values that must agree across backends (weight initialization, and, in deterministic mode,
dropout masks and shuffling) are drawn once on the host with NumPy's PCG64 generator and
then converted to the active backend. Outside deterministic mode dropout uses each
framework's own fast RNG.

Example:
    >>> import unidl
    >>> unidl.random.set_seed(0)
    >>> a = unidl.random.host_rng().random()
    >>> unidl.random.set_seed(0)
    >>> a == unidl.random.host_rng().random()
    True
"""

from __future__ import annotations

import threading

import numpy as np

__all__ = [
    "set_seed",
    "get_seed",
    "set_deterministic",
    "is_deterministic",
    "configure_backend",
    "get_state",
    "set_state",
    "host_rng",
    "next_seed",
    "uniform",
    "normal",
    "truncated_normal",
    "permutation",
]

_lock = threading.Lock()
_seed: int | None = None
_rng = np.random.default_rng()
_deterministic = False


def set_seed(seed: int) -> None:
    """Seed unidl's host generator, NumPy's global one, and every loaded backend's own
    generator (:meth:`unidl.backend.Backend.seed`); a backend loaded later is seeded when it
    loads.

    After ``set_seed(s)`` weight initialization is identical on every backend, and each
    backend repeats its own random draws (dropout masks outside deterministic mode).
    """
    global _seed, _rng
    with _lock:
        _seed = int(seed)
        _rng = np.random.default_rng(_seed)
    np.random.seed(_seed % (2**32))
    from unidl.backend.registry import loaded_backends

    for be in loaded_backends():
        be.seed(_seed)


def get_seed() -> int | None:
    return _seed


def set_deterministic(enabled: bool = True) -> None:
    """Draw dropout masks and shuffling orders on the host too (slower, identical everywhere).

    With a seed set, training then follows the same curve on every backend, within float
    tolerance. Every loaded backend is told (:meth:`unidl.backend.Backend.set_deterministic`:
    PyTorch then asks for deterministic algorithms); a backend loaded later when it loads.
    """
    global _deterministic
    _deterministic = bool(enabled)
    from unidl.backend.registry import loaded_backends

    for be in loaded_backends():
        be.set_deterministic(_deterministic)


def is_deterministic() -> bool:
    return _deterministic


def configure_backend(be) -> None:
    """Give a backend that has just loaded the seed and deterministic mode set so far."""
    if _seed is not None:
        be.seed(_seed)
    if _deterministic:
        be.set_deterministic(True)


def get_state() -> dict:
    """The host generator's state and the seed, as JSON values (what ``model.save`` stores
    in deterministic mode so that a resumed run draws the same masks and orders).

    Example:
        >>> import unidl
        >>> unidl.random.set_seed(1)
        >>> state = unidl.random.get_state()
        >>> a = unidl.random.host_rng().random()
        >>> unidl.random.set_state(state)
        >>> a == unidl.random.host_rng().random()
        True
    """
    with _lock:
        return {"seed": _seed, "bit_generator": _rng.bit_generator.state}


def set_state(state: dict) -> None:
    """Restore a state from :func:`get_state` (the generator continues from there)."""
    global _rng, _seed
    saved = state["bit_generator"]
    kind = getattr(np.random, str(saved.get("bit_generator", "")), None)
    if kind is None or not isinstance(kind, type) or \
            not issubclass(kind, np.random.BitGenerator):
        raise ValueError(f"unknown random generator state {saved.get('bit_generator')!r}; "
                         "expected one from unidl.random.get_state()")
    generator = kind()
    generator.state = saved
    with _lock:
        _rng = np.random.Generator(generator)
        _seed = state.get("seed")


def host_rng() -> np.random.Generator:
    """The host generator all portable draws come from."""
    return _rng


def next_seed() -> int:
    """A fresh 31-bit seed from the host generator (for per-call masks)."""
    with _lock:
        return int(_rng.integers(0, 2**31 - 1))


def _to_backend(arr: np.ndarray, dtype):
    from unidl import dtypes as _dt
    from unidl import ops

    return ops.convert_to_tensor(arr, _dt.standardize(dtype) if dtype else _dt.DEFAULT_FLOAT)


def _generator(seed):
    return np.random.default_rng(seed) if seed is not None else _rng


def uniform(shape, minval=0.0, maxval=1.0, dtype=None, seed=None):
    """Uniform values in ``[minval, maxval)``, drawn on the host (portable)."""
    return _to_backend(_generator(seed).uniform(minval, maxval, size=tuple(shape)), dtype)


def normal(shape, mean=0.0, stddev=1.0, dtype=None, seed=None):
    """Normal values, drawn on the host (portable)."""
    return _to_backend(_generator(seed).normal(mean, stddev, size=tuple(shape)), dtype)


def truncated_normal(shape, mean=0.0, stddev=1.0, dtype=None, seed=None):
    """Normal values redrawn until within two standard deviations (as Keras/TF)."""
    return _to_backend(host_truncated_normal(_generator(seed), shape, mean, stddev), dtype)


def host_truncated_normal(rng, shape, mean=0.0, stddev=1.0) -> np.ndarray:
    shape = tuple(shape)
    out = rng.standard_normal(size=shape)
    bad = np.abs(out) > 2.0
    while bad.any():
        out[bad] = rng.standard_normal(size=int(bad.sum()))
        bad = np.abs(out) > 2.0
    return mean + stddev * out


def permutation(n: int, seed=None) -> np.ndarray:
    """A permutation of ``range(n)`` as a NumPy array (for shuffling)."""
    return _generator(seed).permutation(n)
