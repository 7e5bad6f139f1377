"""unidl's own reverse-mode engine, for backends without native autodiff (NumPy).

While a function is differentiated, the thread's kernel table is swapped for a *traced*
table: each op looks for :class:`Tracer` arguments, runs the backend kernel on their values
and records a node holding the op's spec. The backward pass walks the nodes in reverse
order and calls each op's gradient rule, written in unidl ops. Because those ops are
traced too when an outer differentiation is active, gradients of gradients work: each
nested differentiation gets its own *level* and tracers of different levels nest (the
scheme of HIPS autograd and JAX's reverse mode).

Broadcasting is undone here once: a gradient is summed back to its input's shape and cast
to its dtype before it is accumulated.
"""

from __future__ import annotations

import contextlib

import numpy as np

from unidl import dtypes as _dt
from unidl.backend.binding import Table
from unidl.errors import GradientError
from unidl.spec.core import COMPOSITE

__all__ = ["Tracer", "engine_vjp", "traced_table"]


class Node:
    __slots__ = ("spec", "args", "out", "parents", "multi", "lower")

    def __init__(self, spec, args, out, parents, multi, lower=False):
        self.spec = spec
        self.args = args
        self.out = out
        self.parents = parents  # list of (tensor slot, list index or None, Tracer)
        self.multi = multi
        self.lower = lower  # whether values of an outer differentiation are among the args


class Tracer:
    """A value being differentiated at one nesting ``level``. Ops unwrap it and record."""

    __slots__ = ("value", "level", "node", "index", "__weakref__")
    __array_priority__ = 1000

    def __init__(self, value, level, node=None, index=None):
        self.value = value
        self.level = level
        self.node = node
        self.index = index

    # -- array-like surface, so user code inside grad keeps working -------------------------
    @property
    def shape(self):
        return tuple(self.value.shape)

    @property
    def dtype(self):
        return _dtype(self.value)

    @property
    def ndim(self):
        return len(self.value.shape)

    @property
    def size(self):
        return int(np.prod(self.value.shape, dtype=np.int64))

    def __len__(self):
        return self.value.shape[0]

    def __repr__(self):
        return f"Tracer(level={self.level}, {self.value!r})"

    def __float__(self):
        return float(_primal(self))

    def __int__(self):
        return int(_primal(self))

    def __bool__(self):
        return bool(_primal(self))

    def __array__(self, dtype=None, copy=None):
        raise GradientError(
            "a value being differentiated by unidl.grad was converted to a NumPy array; "
            "use unidl.ops on it (or ops.stop_gradient) instead"
        )

    def __add__(self, o):
        return _ops().add(self, o)

    def __radd__(self, o):
        return _ops().add(o, self)

    def __sub__(self, o):
        return _ops().subtract(self, o)

    def __rsub__(self, o):
        return _ops().subtract(o, self)

    def __mul__(self, o):
        return _ops().multiply(self, o)

    def __rmul__(self, o):
        return _ops().multiply(o, self)

    def __truediv__(self, o):
        return _ops().divide(self, o)

    def __rtruediv__(self, o):
        return _ops().divide(o, self)

    def __pow__(self, o):
        return _ops().power(self, o)

    def __rpow__(self, o):
        return _ops().power(o, self)

    def __matmul__(self, o):
        return _ops().matmul(self, o)

    def __rmatmul__(self, o):
        return _ops().matmul(o, self)

    def __neg__(self):
        return _ops().negative(self)

    def __abs__(self):
        return _ops().abs(self)

    def __lt__(self, o):
        return _ops().less(self, o)

    def __le__(self, o):
        return _ops().less_equal(self, o)

    def __gt__(self, o):
        return _ops().greater(self, o)

    def __ge__(self, o):
        return _ops().greater_equal(self, o)

    @property
    def T(self):
        return _ops().transpose(self)


_OPS = []


def _ops():
    """``unidl.ops`` (imported on first use, then cached: this runs for every traced op)."""
    if not _OPS:
        from unidl import ops

        _OPS.append(ops)
    return _OPS[0]


def _primal(x):
    while x.__class__ is Tracer:
        x = x.value
    return x


_DTYPE_NAMES: dict = {}  # native dtype -> unidl name (asked for every traced value)
_FLOATS = frozenset(_dt.FLOAT_DTYPES)


def _dtype(v):
    while v.__class__ is Tracer:
        v = v.value
    d = v.dtype
    try:
        return _DTYPE_NAMES[d]
    except KeyError:
        name = _DTYPE_NAMES[d] = _dt.standardize(d)
        return name
    except TypeError:  # an unhashable dtype object
        return _dt.standardize(d)


def traced_table(be) -> Table:
    """The traced twin of ``be.table`` (built once per backend)."""
    if getattr(be, "traced_table", None) is None:
        from unidl.spec import all_specs

        table = Table(be.name + "[traced]")
        natives = frozenset(be.tensor_types)
        for spec in all_specs():
            setattr(table, spec.name, _traced(spec, getattr(be.table, spec.name), table,
                                              natives))
        be.traced_table = table
    return be.traced_table


def _traced(spec, base, table, natives=frozenset()):
    tpos, lpos = spec.tensor_pos, spec.tensor_list_pos
    name = spec.name
    through_impl = spec.kind == COMPOSITE and spec.grad is None and spec.differentiable
    impl = spec.impl
    n_slots = len(tpos) + len(lpos)
    is_stop = name == "stop_gradient"

    def traced(*args):
        # unwrap Variables in tensor positions (their value may be a Tracer: a Variable
        # being differentiated) and find the highest nesting level among the arguments
        level = 0
        unwrapped = None
        for i in tpos:
            a = args[i]
            c = a.__class__
            if c is Tracer:
                if a.level > level:
                    level = a.level
            elif c not in natives and hasattr(a, "__unidl_tensor__"):
                a = a.__unidl_tensor__()
                if unwrapped is None:
                    unwrapped = list(args)
                unwrapped[i] = a
                if a.__class__ is Tracer and a.level > level:
                    level = a.level
        if unwrapped is not None:
            args = tuple(unwrapped)
        for i in lpos:
            for a in args[i]:
                if a.__class__ is Tracer and a.level > level:
                    level = a.level
        if level == 0:
            return base(*args)
        if is_stop:
            return base(_primal(args[0]))
        if through_impl:
            return impl(*args)
        prim = list(args)
        parents = []
        lower = False  # whether values of an outer differentiation remain (nested grads)
        for slot, i in enumerate(tpos):
            a = prim[i]
            if a.__class__ is Tracer:
                if a.level == level:
                    prim[i] = a.value
                    parents.append((slot, None, a))
                    if a.value.__class__ is Tracer:
                        lower = True
                else:
                    lower = True
        for k, i in enumerate(lpos):
            seq = list(prim[i])
            for j, a in enumerate(seq):
                if a.__class__ is Tracer:
                    if a.level == level:
                        seq[j] = a.value
                        parents.append((len(tpos) + k, j, a))
                        if a.value.__class__ is Tracer:
                            lower = True
                    else:
                        lower = True
            prim[i] = seq
        # the op on the values: through the traced table if outer levels are active
        out = getattr(table, name)(*prim) if lower else base(*prim)
        if not spec.differentiable or not parents:
            return out
        if spec.grad is None:
            raise GradientError(f"{name}: the spec declares no gradient rule for this op")
        multi = isinstance(out, (list, tuple))
        node = Node(spec, prim, out, parents, multi, lower)
        if multi:
            return type(out)(Tracer(o, level, node, k) if _dt.is_float(_dtype(o)) else o
                             for k, o in enumerate(out))
        return Tracer(out, level, node, None)

    traced.__name__ = name
    traced.n_slots = n_slots
    return traced


# -- backward pass --------------------------------------------------------------------------
def _unbroadcast(g, shape, dtype):
    ops = _ops()
    gshape = tuple(g.shape) if hasattr(g, "shape") else ops.shape(g)
    if gshape != tuple(shape):
        extra = len(gshape) - len(shape)
        axes = list(range(extra))
        for i, d in enumerate(shape):
            if d == 1 and gshape[extra + i] != 1:
                axes.append(extra + i)
        if axes:
            g = ops.sum(g, tuple(axes), False)
        if ops.shape(g) != tuple(shape):
            g = ops.reshape(g, tuple(shape))
    if ops.dtype(g) != dtype:
        g = ops.cast(g, dtype)
    return g


def _key(t: Tracer):
    return ("leaf", id(t)) if t.node is None else (id(t.node), t.index)


def _toposort(outputs):
    order, seen = [], set()
    stack = [(t.node, False) for t in outputs if t.node is not None]
    while stack:
        node, done = stack.pop()
        if done:
            order.append(node)
            continue
        if id(node) in seen:
            continue
        seen.add(id(node))
        stack.append((node, True))
        for _, _, p in node.parents:
            if p.node is not None and id(p.node) not in seen:
                stack.append((p.node, False))
    return order[::-1]


def _all_native(g, natives) -> bool:
    if g.__class__ in natives:
        return True
    return isinstance(g, list) and all(x is None or x.__class__ in natives for x in g)


def backward(outputs, cotangents, leaves, grad_kernels=None, natives=frozenset()):
    """Cotangents of ``leaves`` given ``cotangents`` of ``outputs`` (all Tracers of one level).

    ``grad_kernels`` (a backend's, by op name) replace the spec's rules for nodes whose
    arguments and cotangent are plain native tensors (a first-order pass); ``natives`` are
    the backend's tensor types."""
    ops = _ops()
    cts: dict = {}
    for t, c in zip(outputs, cotangents):
        if t.__class__ is Tracer and c is not None:
            k = _key(t)
            cts[k] = c if k not in cts else ops.add(cts[k], c)
    for node in _toposort([t for t in outputs if t.__class__ is Tracer]):
        if node.multi:
            gs = [cts.pop((id(node), k), None) for k in range(len(node.out))]
            if all(g is None for g in gs):
                continue
            g = gs
        else:
            g = cts.pop((id(node), None), None)
            if g is None:
                continue
        grads = None
        kernel = grad_kernels.get(node.spec.name) if grad_kernels else None
        if kernel is not None and not node.lower and _all_native(g, natives):
            grads = kernel([p[0] for p in node.parents], g, node.out, *node.args)
        partial = node.spec.grad_partial if grads is None else None
        if partial is not None:
            # not every input is differentiated (e.g. a layer's weights, not its data input):
            # the spec's partial rule skips computing the others' cotangents
            grads = partial([p[0] for p in node.parents], g, node.out, *node.args)
        if grads is None:
            grads = node.spec.grad(g, node.out, *node.args)
        if not isinstance(grads, (tuple, list)):
            raise GradientError(f"{node.spec.name}: gradient rule must return a tuple")
        n_grads = len(grads)
        for slot, j, parent in node.parents:
            gi = grads[slot] if slot < n_grads else None
            if gi is not None and j is not None:
                gi = gi[j]
            if gi is None:
                continue
            pdt = parent.dtype
            if pdt not in _FLOATS:
                continue
            pshape = tuple(parent.value.shape)
            if not (gi.__class__ is parent.value.__class__ and tuple(gi.shape) == pshape
                    and _dtype(gi) == pdt):
                gi = _unbroadcast(gi, pshape, pdt)  # (a no-op in the common case above)
            k = ("leaf", id(parent)) if parent.node is None else (id(parent.node), parent.index)
            cts[k] = gi if k not in cts else ops.add(cts[k], gi)
    return [cts.get(_key(t)) if t is not None else None for t in leaves]


def engine_vjp(be, state, fn, primals):
    """Reverse-mode ``(outputs_flat, vjp_fn)`` of ``fn`` at ``primals`` on backend ``be``."""
    saved_k = state.k
    state.tracing += 1
    level = state.tracing
    state.k = traced_table(be)
    try:
        leaves = [Tracer(p, level) if _dt.is_float(_dtype(p)) else p for p in primals]
        outs = fn(*leaves)
    finally:
        state.tracing -= 1
        if state.tracing == 0:
            state.k = saved_k
    out_tracers = [o if (o.__class__ is Tracer and o.level == level) else None for o in outs]
    values = [o.value if t is not None else o for o, t in zip(outs, out_tracers)]

    def vjp_fn(cotangents):
        active = [(t, c) for t, c in zip(out_tracers, cotangents) if t is not None]
        if not active:
            return [None] * len(leaves)
        kernels = None if state.spec_rules_only else be.grad_kernels
        got = backward([t for t, _ in active], [c for _, c in active],
                       [x if x.__class__ is Tracer and x.level == level else None
                        for x in leaves], kernels, frozenset(be.tensor_types))
        return [g if leaf.__class__ is Tracer else None for g, leaf in zip(got, leaves)]

    return values, vjp_fn


@contextlib.contextmanager
def spec_rules_only():
    """Within this block unidl's engine differentiates with the spec's gradient rules only,
    not with a backend's gradient kernels (the conformance suite's reference)."""
    from unidl.backend.state import STATE

    saved = STATE.spec_rules_only
    STATE.spec_rules_only = True
    try:
        yield
    finally:
        STATE.spec_rules_only = saved
