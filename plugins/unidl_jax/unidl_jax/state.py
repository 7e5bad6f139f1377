"""Mutable state on a framework whose arrays are immutable: Variables as boxes.

A JAX array never changes, so a :class:`unidl.Variable` on this backend is stored as a
:class:`Box` whose ``value`` is replaced on every assignment. Outside any transformation that
is all there is to it. Two transformations need more:

* ``jax.vjp`` (eager): an assignment made inside the differentiated function (BatchNorm's
  moving statistics) stores ``lax.stop_gradient(value)``, which is a concrete array there,
  so no tracer escapes.
* ``jax.jit`` (:mod:`unidl_jax.compile`): the step reads and assigns boxes while it is traced.
  The compiled step takes the boxes' values as inputs and returns their new values, and the
  boxes are bound to the traced inputs only while the trace runs. Which boxes a step uses is
  found by :func:`recording` them during one eager call.

The random key of ``dropout(seed=None)`` is a box too, so a compiled step threads it like any
Variable and draws fresh masks on every call.

Example:
    >>> import jax.numpy as jnp
    >>> b = Box(jnp.zeros(2))
    >>> with recording() as used:
    ...     write(b, read(b) + 1)
    >>> [x is b for x, _ in used], b.value.tolist()
    ([True], [1.0, 1.0])
"""

from __future__ import annotations

import contextlib
import weakref

import jax
from jax.core import Tracer

__all__ = ["Box", "read", "write", "recording", "next_key", "seed_key", "ALL_BOXES"]

#: every live box, for :meth:`JaxBackend.synchronize`
ALL_BOXES: weakref.WeakSet = weakref.WeakSet()

#: the boxes used since each active :func:`recording` began (innermost last)
_RECORDERS: list[dict] = []


class Box:
    """The storage of one Variable: a slot holding the current (immutable) array."""

    __slots__ = ("value", "name", "__weakref__")

    def __init__(self, value, name: str = "variable"):
        self.value = value
        self.name = name
        ALL_BOXES.add(self)

    def __repr__(self) -> str:
        return f"<unidl_jax.Box {self.name!r} {getattr(self.value, 'aval', type(self.value))}>"


def read(box: Box):
    """The box's current array (recorded when a :func:`recording` is active)."""
    if _RECORDERS and id(box) not in _RECORDERS[-1]:
        _RECORDERS[-1][id(box)] = (box, box.value)
    return box.value


def write(box: Box, value) -> Box:
    """Store ``value`` (its gradient stopped: an assignment is never differentiated)."""
    if _RECORDERS and id(box) not in _RECORDERS[-1]:
        _RECORDERS[-1][id(box)] = (box, box.value)
    box.value = jax.lax.stop_gradient(value) if isinstance(value, Tracer) else value
    return box


@contextlib.contextmanager
def recording():
    """Collect the boxes read or written inside the block: yields a list, filled at exit
    with ``(box, value before its first use)`` in first-use order. Nested recordings also
    report to the outer one."""
    used: dict = {}
    _RECORDERS.append(used)
    out: list = []
    try:
        yield out
    finally:
        _RECORDERS.pop()
        out.extend(used.values())
        if _RECORDERS:
            outer = _RECORDERS[-1]
            for key, entry in used.items():
                outer.setdefault(key, entry)


_KEY: list[Box] = []


def _key_box() -> Box:
    return _KEY[0]


def make_key_box() -> None:
    """Create the generator's box (when the backend loads: never inside a trace, where the
    initial key would be symbolic)."""
    if not _KEY:
        _KEY.append(Box(jax.random.PRNGKey(0), name="unidl_jax/random_key"))


def seed_key(seed: int) -> None:
    """Restart the backend's generator from ``seed`` (``unidl.random.set_seed``)."""
    write(_key_box(), jax.random.PRNGKey(int(seed) % (2 ** 32)))


def next_key():
    """A fresh key from the backend's generator (advancing it), for ``dropout(seed=None)``."""
    box = _key_box()
    key, sub = jax.random.split(read(box))
    write(box, key)
    return sub
