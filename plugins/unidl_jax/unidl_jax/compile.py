"""``jax.jit`` for unidl's steps, which read and assign Variables (boxes).

A unidl step (``Model``'s train, test and predict steps) reads weights and assigns new ones,
optimizer slots, metric sums and the random key. :class:`CompiledStep` turns it into a pure
function for ``jax.jit``: the values of the boxes it uses go in, the new values of those it
assigned come out (a prediction step returns none of its weights), and the boxes are bound
to the traced values only while the trace runs (then restored). The boxes a step uses are
found by running it once eagerly while :func:`unidl_jax.state.recording`; a later trace that
touches a box not in that list (a step whose state grew) is abandoned and the step is
rediscovered the same way.

Example:
    >>> import jax.numpy as jnp
    >>> from unidl_jax.state import Box, read, write
    >>> b = Box(jnp.zeros(()))
    >>> def accumulate(x):
    ...     write(b, read(b) + x)
    >>> step = CompiledStep(accumulate)
    >>> for _ in range(3):
    ...     _ = step(jnp.ones(()))
    >>> float(b.value), step.compiled
    (3.0, True)
"""

from __future__ import annotations

import jax

from unidl_jax.state import recording

__all__ = ["CompiledStep", "is_tracing"]

_DEPTH = [0]  # > 0 while a CompiledStep is being traced


def is_tracing() -> bool:
    """Whether a compiled step is being traced now (its values are symbolic)."""
    return _DEPTH[0] > 0


class _StateGrew(Exception):
    """A trace used boxes its step did not list."""


class CreatesState(Exception):
    """Raised by ``new_variable`` during a discovering trace: the step builds state, so it is
    discovered by an eager call instead (where the new Variables get concrete values)."""


_DISCOVERING = [0]


def discovering() -> bool:
    """Whether a step is being traced only to find its boxes (a new Variable now would get a
    symbolic value: ``new_variable`` raises :class:`CreatesState`)."""
    return _DISCOVERING[0] > 0


def _traced(fn, args, kwargs):
    """The ``(box, value)`` pairs ``fn`` uses, found by an abstract trace; every box it
    assigned is restored."""
    used = []
    _DEPTH[0] += 1
    _DISCOVERING[0] += 1
    try:
        with recording() as used:
            jax.eval_shape(lambda a, k: _arrays_only(fn(*a, **k)), args, kwargs)
    finally:
        _DEPTH[0] -= 1
        _DISCOVERING[0] -= 1
        for box, before in used:
            box.value = before
    return used


def _arrays_only(out):
    """``out`` for ``eval_shape`` (which only needs a pytree of arrays): anything else, None."""
    return jax.tree_util.tree_map(lambda x: x if hasattr(x, "shape") else None, out)


class CompiledStep:
    """``fn`` run through ``jax.jit`` with the Variables it uses threaded in and out."""

    def __init__(self, fn):
        self.fn = fn
        self.boxes: list | None = None
        self._jitted = None

    @property
    def compiled(self) -> bool:
        """Whether the next call runs the compiled function (after the discovering call)."""
        return self._jitted is not None

    def __call__(self, *args, **kwargs):
        if _DEPTH[0]:
            return self.fn(*args, **kwargs)  # (inside an outer trace: part of it)
        if self.boxes is None:
            return self._discover(args, kwargs)
        try:
            out, new = self._jitted(tuple(b.value for b in self.boxes), args, kwargs)
        except _StateGrew:
            return self._discover(args, kwargs)
        boxes = self.boxes
        for i, value in new.items():
            boxes[i].value = value
        return out

    def _discover(self, args, kwargs):
        """Find the boxes the step uses by tracing it abstractly (``jax.eval_shape``: no
        computation, no compilation), then run it compiled. A step that creates Variables
        (state built on its first call) is instead run once eagerly, which creates them and
        records the boxes; the next call is compiled."""
        try:
            self.boxes = [box for box, _ in _traced(self.fn, args, kwargs)]
        except CreatesState:
            with recording() as used:
                out = self.fn(*args, **kwargs)
            self.boxes = [box for box, _ in used]
            self._jitted = jax.jit(self._pure)
            return out
        self._jitted = jax.jit(self._pure)
        return self(*args, **kwargs)

    def _pure(self, values, args, kwargs):
        boxes = self.boxes
        saved = [b.value for b in boxes]
        _DEPTH[0] += 1
        used = []
        try:
            for box, value in zip(boxes, values):
                box.value = value
            with recording() as used:
                out = self.fn(*args, **kwargs)
            # (only the boxes the step assigned: returning the others costs a copy each,
            # 40 us per MLP prediction on the CPU)
            new = {i: b.value for i, (b, v) in enumerate(zip(boxes, values)) if b.value is not v}
        finally:
            _DEPTH[0] -= 1
            for box, value in zip(boxes, saved):
                box.value = value
            listed = {id(b) for b in boxes}
            grew = [(box, before) for box, before in used if id(box) not in listed]
            for box, before in grew:  # (never leave a traced value in a box)
                box.value = before
        if grew:
            raise _StateGrew()
        return out, new
