"""Compiled steps for eager backends: record a step's kernel calls once, then replay them.

A model step on an eager backend is Python all the way down: layers, the dispatcher (and on
NumPy unidl's autodiff engine: one node per op, one gradient rule per node), the optimizer,
the metrics. For a step called again and again with arrays of the same shapes and dtypes,
that Python decides the same thing every time; only the kernels' arrays change.
:func:`compile_function` therefore runs the step eagerly while *recording* every call that
computes or changes an array (the backend's kernels, its gradient kernels, its fused
optimizer updates, its conversions and variable updates: the functions wrapped by
:func:`recorded`) with where each argument came from (an input of the step, the output of an
earlier call, or a constant), and afterwards *replays* that tape: the same kernels on the new
inputs, with no layer, dispatcher, engine or optimizer Python in between. This is what
``tf.function`` does for TensorFlow, with the same contract (``Backend.compile_traces``): the
step's Python runs only while recording, so host-drawn randomness must not be frozen into it
(``is_recording()`` is true while recording, and the backend's ``is_tracing`` says so: Dropout
then draws from the backend's generator inside the ``dropout`` kernel, which the replay runs
again: a new mask every step).

Nothing here names a framework. A backend registers its array class
(:func:`register_array_type`: how to find a view's base, compare two constants, and key a
call's signature) and wraps the functions that compute or change arrays with
:func:`recorded`. The NumPy backend's gradients are unidl's own gradient kernels, recorded
like the rest; the torch backend records the leaves and the ``torch.autograd.grad`` call,
so a replay rebuilds autograd's graph from the replayed forward kernels
(``unidl_torch.tape``).

When a tape is used (``_Compiled`` below):

* per call signature: the tree structure of the arguments, the shape and dtype (and the
  backend's ``key``: a device) of each array, the value of each other leaf, whether the
  gradient kernels are on (``spec_rules_only``) and the function's ``context()`` (torch:
  the grad mode); each signature gets its own tape;
* only after two recordings of that signature agree: the same calls with the same
  constants (the same objects: a variable's storage, a cached constant; an array the
  step's Python makes anew on each call, such as a gradient rule's ``np.array`` of
  constants, compares by dtype, shape and value, up to 65,536 elements). An array computed
  outside the recorded functions from the step's data differs between the two recordings
  (other batches) or is a view of an input, so such a step is not replayed; it runs
  eagerly, as do steps whose recording failed the checks. (A step computing NumPy outside
  unidl's ops from its data, recorded twice on the very same batch, is the case these
  checks cannot see.) One array passed as two arguments is part of the signature;
* while no variable was created or replaced its storage since the recording (an epoch
  counter bumped by ``new_variable`` and by an ``assign_variable`` of another shape): the
  tape holds the storages themselves, updated in place;
* never while unidl's engine is differentiating (the step is then traced like any code),
  in deterministic mode, or on another thread than the one recording.
"""

from __future__ import annotations

import functools
import threading

import numpy as np

from unidl.backend.state import STATE as _STATE_

__all__ = ["compile_function", "recorded", "is_recording", "replaying_gradients",
           "bump_epoch", "register_array_type", "not_replayable"]

_STATE = {"epoch": 0, "gradients": 0}
_RECORDER = None  # the active _Recorder (one at a time, process-wide), or None
_LOCK = threading.Lock()
_BY_VALUE_SIZE = 1 << 16  # (larger constants made anew each call: never replayed)
MAX_SIGNATURES = 16  # tapes kept per compiled function (then: eager for new signatures)


class _Kind:
    """How the tape treats one array class (see :func:`register_array_type`)."""

    __slots__ = ("base", "same_values", "numel", "key")

    def __init__(self, base, same_values, numel, key):
        self.base, self.same_values, self.numel, self.key = base, same_values, numel, key


_KINDS: dict = {}  # array class -> _Kind


def register_array_type(cls, *, base, same_values, numel, key) -> None:
    """Let tapes hold arrays of exactly ``cls`` (subclasses are not arrays to a tape).

    ``base(obj)``: the object ``obj`` is a view of, or None (followed until None, so it is
    called on bases too); ``same_values(a, b)``: whether two arrays have the same dtype,
    shape, placement and values; ``numel(a)``: its number of elements; ``key(a)``: a
    hashable signature (shape, dtype, and device where there are several).

    What the torch plugin registers (``plugins/unidl_torch/tape.py``)::

        register_array_type(torch.Tensor, base=lambda o: getattr(o, "_base", None),
                            same_values=lambda a, b: a.device == b.device and
                            bool(torch.equal(a, b)), numel=lambda a: a.numel(),
                            key=lambda a: (tuple(a.shape), a.dtype, a.device))
    """
    _KINDS[cls] = _Kind(base, same_values, numel, key)


# host arrays: the NumPy backend's arrays, and constants (``np.array``s a step's Python makes,
# converted by a recorded call) in every backend's steps
register_array_type(np.ndarray, base=lambda o: getattr(o, "base", None),
                    same_values=lambda a, b: bool(np.array_equal(a, b)),
                    numel=lambda a: a.size, key=lambda a: (a.shape, a.dtype))


def bump_epoch() -> None:
    """A variable was created or got a new storage: recorded tapes may hold stale arrays."""
    _STATE["epoch"] += 1


def not_replayable() -> None:
    """The step being recorded now must run eagerly (it did something the tape cannot
    repeat: e.g. handed its autodiff leaves to a hook). Nothing when not recording."""
    r = _RECORDER
    if r is not None and r.thread == threading.get_ident():
        r.unsafe = True


def replaying_gradients() -> bool:
    """Whether a tape with gradient kernels is being replayed (a kernel may then keep what
    the gradient kernel will need, as it does when unidl's engine traces it)."""
    return _STATE["gradients"] > 0


def is_recording() -> bool:
    """Whether this thread is recording a tape now (the backend's ``is_tracing``)."""
    r = _RECORDER
    return r is not None and r.thread == threading.get_ident()


class _Ref:
    """An argument read from the tape's value slot ``i``."""

    __slots__ = ("i",)

    def __init__(self, i):
        self.i = i


class _Seq:
    """A list or tuple argument holding some references: rebuilt on every replay."""

    __slots__ = ("kind", "items")

    def __init__(self, kind, items):
        self.kind, self.items = kind, items


class _Recorder:
    """Collects ``(fn, arg templates, output slots)`` entries while a step runs eagerly."""

    def __init__(self, inputs):
        self.thread = threading.get_ident()
        self.depth = 0  # > 0 inside a recorded call: calls it makes are part of it
        self.slots = {}  # id(array) -> slot
        self.keep = []  # every array given a slot (so that no id is reused meanwhile)
        self.entries = []
        self.consts = []  # (array constant, how it compares) of every entry, in order
        self.n = 0
        self.unsafe = False  # (a constant derived from the step's arrays: never replay)
        self.gradients = False  # (whether a gradient kernel was recorded)
        for a in inputs:
            self._slot(a)
        self.n_inputs = self.n

    def _slot(self, a):
        self.slots[id(a)] = self.n
        self.keep.append(a)
        self.n += 1
        return self.n - 1

    def template(self, a):
        """``a`` as an argument template: a reference, a rebuilt sequence, or a constant."""
        c = a.__class__
        kind = _KINDS.get(c)
        if kind is not None:
            i = self.slots.get(id(a))
            if i is not None:
                return _Ref(i)
            b = kind.base(a)
            while b is not None:  # a view of a slot's array, made outside recorded calls
                if id(b) in self.slots:
                    self.unsafe = True
                b = kind.base(b)
            self.consts.append(a)
            return a
        if c is list or c is tuple:
            items = [self.template(x) for x in a]
            if any(x.__class__ is _Ref or x.__class__ is _Seq for x in items):
                return _Seq(c, items)
            return a
        return a

    def outputs(self, out):
        """Slots for the arrays of a call's result (an array, or a sequence of them)."""
        if out.__class__ in _KINDS:
            return self._slot(out)
        if isinstance(out, (list, tuple)):
            return tuple(self._slot(o) if o.__class__ in _KINDS else None for o in out)
        return None

    def add(self, fn, args, kwargs, out):
        """Record ``fn(*args, **kwargs) -> out``."""
        if kwargs:  # (keywords: passed as one more positional template, rebuilt per call)
            fn = _with_keywords(fn, tuple(kwargs))
            args = args + tuple(kwargs.values())
        self.entries.append((fn, tuple(self.template(a) for a in args), self.outputs(out)))


_KW_CALLS: dict = {}


def _with_keywords(fn, names):
    """``fn`` taking the keyword arguments ``names`` as its last positional ones (one
    object per function and names, so that two recordings compare equal)."""
    key = (fn, names)
    got = _KW_CALLS.get(key)
    if got is None:
        k = len(names)

        def got(*args):
            return fn(*args[:-k], **dict(zip(names, args[-k:])))

        _KW_CALLS[key] = got
    return got


def recorded(fn, gradient=False):
    """``fn`` (a kernel, gradient kernel, optimizer update or backend method computing or
    changing arrays) recorded into the active tape when called outside another recorded
    call; otherwise ``fn`` itself, at the cost of one global read. ``gradient``: ``fn`` is
    a gradient kernel (see :func:`replaying_gradients`)."""

    @functools.wraps(fn)
    def call(*args, **kwargs):
        r = _RECORDER
        if r is None or r.depth or r.thread != threading.get_ident():
            return fn(*args, **kwargs)
        r.depth += 1
        try:
            out = fn(*args, **kwargs)
        finally:
            r.depth -= 1
        r.add(fn, args, kwargs, out)
        if gradient:
            r.gradients = True
        return out

    call.recorded = fn
    return call


class _Tape:
    """A recorded step: replays its entries on new inputs."""

    def __init__(self, rec, out_template, epoch):
        self.n = rec.n
        self.epoch = epoch
        self.out = out_template
        self.consts = rec.consts
        self.gradients = rec.gradients
        self.signature = [(e[0], len(e[1])) for e in rec.entries]
        frees = _last_uses(rec.entries, out_template)
        #: ``(kernel, argument templates, output slots, slots last used here)`` per call
        self.steps = [(fn, list(args), outs, free)
                      for (fn, args, outs), free in zip(rec.entries, frees)]
        self.n_inputs = rec.n_inputs
        self._replay = None  # (the straight-line function: made on the first replay)

    def agrees(self, other) -> bool:
        """Whether ``other`` recorded the same calls with the same constants."""
        if self.signature != other.signature or len(self.consts) != len(other.consts):
            return False
        return all(_same_const(a, b) for a, b in zip(self.consts, other.consts)) and \
            _same_templates(self.steps, other.steps)

    def replay(self, inputs):
        """The step's result on ``inputs`` (the call's arrays, in order)."""
        if not self.gradients:
            return self._run(inputs)
        _STATE["gradients"] += 1
        try:
            return self._run(inputs)
        finally:
            _STATE["gradients"] -= 1

    def _run(self, inputs):
        fn = self._replay
        if fn is None:
            from unidl.backend.replay import straight_line

            fn = self._replay = straight_line(self.n_inputs, self.steps, self.out, _Ref, _Seq)
        return fn(inputs)


def _slots_in(t, acc):
    """Append the slots an argument template reads to ``acc``."""
    c = t.__class__
    if c is _Ref:
        acc.append(t.i)
    elif c is _Seq:
        for x in t.items:
            _slots_in(x, acc)
    return acc


def _last_uses(entries, out_template):
    """Per entry, the slots to free after it: those no later entry (nor the result) reads."""
    last = {}
    for i, (_, args, outs) in enumerate(entries):
        for a in args:
            for s in _slots_in(a, []):
                last[s] = i
        produced = (outs,) if outs.__class__ is int else (outs or ())
        for s in produced:
            if s is not None:
                last[s] = i
    treedef, leaves = out_template
    kept = set(_slots_in(leaves, []) if treedef is None else
               [s for t in leaves for s in _slots_in(t, [])])
    frees = [[] for _ in entries]
    for s, i in last.items():
        if s not in kept:
            frees[i].append(s)
    return [tuple(f) for f in frees]


def _same_const(a, b) -> bool:
    """Whether two recordings read the same constant: the same object (a variable's storage,
    a cached constant) or, for an array made again on each call by the step's Python (from
    constants: a ``np.array`` in a gradient rule), an array of the same dtype, shape and
    values (recorded calls never make one: their results are slots)."""
    if a is b:
        return True
    kind = _KINDS[a.__class__]
    return a.__class__ is b.__class__ and a.dtype == b.dtype and a.shape == b.shape and \
        kind.numel(a) <= _BY_VALUE_SIZE and kind.same_values(a, b)


def _same_templates(a_steps, b_steps) -> bool:
    """Whether two tapes' argument templates match (references, Python values)."""
    for (_, a_args, a_outs, _), (_, b_args, b_outs, _) in zip(a_steps, b_steps):
        if a_outs != b_outs or not all(_same(x, y) for x, y in zip(a_args, b_args)):
            return False
    return True


_BY_VALUE = (int, float, bool, complex, str, bytes, slice, type(None), type(Ellipsis))


def _same(x, y) -> bool:
    cx = x.__class__
    if cx is not y.__class__:
        return False
    if cx is _Ref:
        return x.i == y.i
    if cx is _Seq:
        return x.kind is y.kind and len(x.items) == len(y.items) and all(
            _same(a, b) for a, b in zip(x.items, y.items))
    if cx in _KINDS:
        return True  # (constants: compared in order by ``agrees``)
    if cx in _BY_VALUE or isinstance(x, np.generic):
        return x == y and type(x) is type(y)
    if cx in (list, tuple):
        return len(x) == len(y) and all(_same(a, b) for a, b in zip(x, y))
    return x is y


def _out_template(rec, out):
    """``(treedef, leaf templates)`` of a step's result (``(None, template)`` for one
    array), so that arrays inside dicts and named tuples are the replay's own."""
    if out.__class__ in _KINDS:
        return None, rec.template(out)
    from unidl import tree

    leaves, treedef = tree.flatten(out)
    return treedef, [rec.template(leaf) for leaf in leaves]


def _signature(args):
    """``(flat arrays, key)`` of a call, or None when the call must run eagerly."""
    kinds = _KINDS
    arrays, key = [], []
    for a in args:  # (the common case, arrays and None: one plain loop)
        kind = kinds.get(a.__class__)
        if kind is not None:
            arrays.append(a)
            key.append(kind.key(a))
        elif a is None:
            key.append(None)
        else:
            return _nested_signature(args)
    return _with_repeats(arrays, tuple(key))


def _nested_signature(args):
    """:func:`_signature` of arguments that hold structures or Python values."""
    from unidl import tree

    flat, treedef = tree.flatten(list(args))
    arrays, parts = [], [repr(treedef)]
    for a in flat:
        kind = _KINDS.get(a.__class__)
        if kind is not None:
            arrays.append(a)
            parts.append(kind.key(a))
        elif a is None or a.__class__ in _BY_VALUE:
            parts.append((a.__class__, a))
        else:
            return None  # (a Variable, a Tracer, another framework's tensor: eager)
    return _with_repeats(arrays, tuple(parts))


def _with_repeats(arrays, key):
    """``(arrays, key)``, the key naming which arrays are the same object, if any are."""
    if len(arrays) > 1:
        ids = [id(a) for a in arrays]
        if len(set(ids)) != len(ids):
            key = (key, tuple(ids.index(i) for i in ids))
    return arrays, key


def _is_deterministic() -> bool:
    from unidl import random as urandom  # (imported here: unidl.random imports backends)

    global _is_deterministic
    _is_deterministic = urandom.is_deterministic
    return urandom.is_deterministic()


class _Compiled:
    """``fn`` with a tape per call signature (see the module docstring)."""

    def __init__(self, fn, context=None):
        self.fn = fn
        self.context = context
        self.tapes = {}  # key -> _Tape, a list of recordings, or False (eager)
        self.__name__ = getattr(fn, "__name__", "step")
        self.__doc__ = getattr(fn, "__doc__", None)

    def __call__(self, *args):
        sig = None
        if _RECORDER is None and not _STATE_.tracing and not _is_deterministic():
            sig = _signature(args)
        if sig is None:
            return self.fn(*args)
        arrays, key = sig
        key = (key, _STATE_.spec_rules_only, None if self.context is None else self.context())
        got = self.tapes.get(key)
        if got.__class__ is _Tape:
            if got.epoch == _STATE["epoch"]:
                return got.replay(arrays)
            self.tapes = {}  # (a variable was made or replaced: record every signature anew)
            got = None
        if got is False or (got is None and len(self.tapes) >= MAX_SIGNATURES):
            return self.fn(*args)
        return self._record(key, got or [], args, arrays)

    def _record(self, key, recordings, args, arrays):
        """Run ``fn`` eagerly while recording; keep the tape once two recordings agree."""
        global _RECORDER
        epoch = _STATE["epoch"]
        with _LOCK:
            if _RECORDER is not None:
                return self.fn(*args)
            rec = _RECORDER = _Recorder(arrays)
        try:
            out = self.fn(*args)
        finally:
            _RECORDER = None
        if _STATE["epoch"] != epoch:
            self.tapes[key] = []  # (variables were built meanwhile: record again)
            return out
        tape = _Tape(rec, _out_template(rec, out), epoch)
        if rec.unsafe:
            self.tapes[key] = False
        elif not recordings:
            self.tapes[key] = [tape]
        elif recordings[0].agrees(tape):
            self.tapes[key] = tape
        else:
            self.tapes[key] = False  # (the step is not the same calls each time: eager)
        return out


def compile_function(fn, context=None):
    """``fn`` replaying a recorded tape of its kernel calls (see the module docstring).
    ``context()``, if given, is part of each call's signature (a framework mode the calls
    depend on, e.g. whether torch records gradients)."""
    return _Compiled(fn, context)
