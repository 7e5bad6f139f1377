"""Cheap proofs, made while a ``tf.function`` is traced, that a tensor holds no NaN.

Two NaN work-arounds cost a pass over a large tensor in a graph: the max pool's check
(:func:`unidl_tensorflow.kernels.nan.pooled_nan` reduces the pool's input) and the relu
that Grappler must not fuse into the convolution before it on oneDNN CPUs
(:func:`unidl_tensorflow.kernels.nn.relu`). Both matter only when that tensor holds a NaN,
and for a convolution's output that can be decided from much smaller tensors:

``z = conv(x, k) + b`` is finite when ``x``, ``k`` and ``b`` are finite and no sum
overflows, and every sum is bounded by ``max|x| * max_j sum|k[..., j]| + max|b|``. When
that bound is below the dtype's maximum times 2**-24 (a margin that covers rounding and
the larger intermediates of transform-domain algorithms such as Winograd), ``z`` holds no
NaN and no infinity. The bound is NaN or infinite when an input holds a NaN or an
infinity (``reduce_max`` keeps NaN outside XLA), and the comparison is then false.

A :class:`Fact` is that scalar test (``ok``) and a bound on ``|z|`` valid when it holds.
The convolution records one on its output; a relu and a max pool pass it on (neither
makes a value larger), so the next convolution's test costs no pass over its input either.
A kernel that reads a fact decides at run time with a ``tf.cond``: the fast path when
``ok`` holds, the full NaN-keeping path otherwise, so a NaN is never lost; at worst the
work-around costs what it did before, plus a few scalar ops.

Facts exist only for float32 and float64, in a graph that XLA does not compile (XLA's
``reduce_max`` drops NaN, see :mod:`unidl_tensorflow.kernels.nan`); eager kernels never
read them.
"""

from __future__ import annotations

import math

import tensorflow as tf

from unidl_tensorflow.kernels.nan import in_xla_context

__all__ = ["Fact", "conv_fact", "of", "pass_on"]

_ATTR = "_unidl_nan_fact"
_MARGIN = 2.0 ** -24
_FLOATS = (tf.float32, tf.float64)


class Fact:
    """``ok``: a scalar bool tensor; when true the tensor is finite and ``|t| <= bound``.

    Built lazily, once (:meth:`ok_bound`): a fact nobody reads adds nothing to the graph.
    ``own_cost``: the elements its test reduces beyond those of ``parent`` (the fact it
    builds on); ``recompute``: a callable that builds the tensor again (used where the
    original must keep a single consumer).
    """

    __slots__ = ("graph", "own_cost", "parent", "recompute", "_build", "_built")

    def __init__(self, build, own_cost: float, parent=None, recompute=None):
        self.graph = tf.compat.v1.get_default_graph()
        self.own_cost, self.parent, self.recompute = own_cost, parent, recompute
        self._build = build
        self._built = None

    def ok_bound(self) -> tuple:
        """``(ok, bound)`` scalar tensors (built on the first call)."""
        if self._built is None:
            self._built = self._build()
        return self._built

    @property
    def cost(self) -> float:
        """The elements still to reduce to build this fact (0 once it is built)."""
        if self._built is not None:
            return 0
        return self.own_cost + (self.parent.cost if self.parent is not None else 0)

    def cheaper_than(self, t) -> bool:
        """Whether testing this fact costs less than one pass over ``t``."""
        return self.cost < _elements(t)


def of(t) -> Fact | None:
    """The fact recorded on ``t`` in the graph being built now, or None."""
    fact = getattr(t, _ATTR, None)
    if fact is None or fact.graph is not tf.compat.v1.get_default_graph():
        return None
    return fact


def pass_on(y, fact: Fact | None):
    """Record ``fact`` on ``y`` (an op that keeps ``|y| <= max|x|``: relu, max pool)."""
    if fact is not None and _usable(y):
        setattr(y, _ATTR, Fact(fact.ok_bound, 0, parent=fact))
    return y


def conv_fact(z, x, kernel, bias=None, recompute=None):
    """Record on ``z = conv(x, kernel) + bias`` (kernel ``(..., in, out)``) its fact."""
    if not (_usable(z) and x.dtype == z.dtype == kernel.dtype):
        return z
    x_fact = of(x)
    cost = _elements(kernel) + (0 if x_fact is not None else _elements(x))

    def build():
        if x_fact is not None:
            x_ok, x_max = x_fact.ok_bound()
        else:
            x_ok, x_max = tf.constant(True), _max_abs(x)
        k = tf.abs(tf.stop_gradient(kernel))
        per_output = tf.reduce_sum(k, axis=list(range(kernel.shape.rank - 1)))
        raw = x_max * tf.reduce_max(per_output)
        if bias is not None:
            raw = raw + _max_abs(tf.cast(bias, z.dtype))
        limit = tf.constant(z.dtype.max * _MARGIN, z.dtype)
        return tf.logical_and(x_ok, raw < limit), 2 * raw

    setattr(z, _ATTR, Fact(build, cost, parent=x_fact, recompute=recompute))
    return z


def _usable(t) -> bool:
    return (not tf.executing_eagerly() and t.dtype in _FLOATS and not in_xla_context())


def _max_abs(t):
    return tf.reduce_max(tf.abs(tf.stop_gradient(t)))


def _elements(t) -> float:
    """``t``'s element count, an unknown batch counted as 1 (an unknown shape: inf)."""
    shape = t.shape
    if shape.rank is None:
        return math.inf
    n = 1
    for i, d in enumerate(shape.as_list()):
        if d is None and i > 0:
            return math.inf
        n *= 1 if d is None else d
    return n
