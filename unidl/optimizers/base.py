"""The optimizer base class: state in Variables, gradient clipping, learning rates, the step.

One step (``apply``) does, in order:

1. drop ``None`` gradients; convert the others to native tensors of their variable's dtype;
2. clip the gradients: ``clipvalue`` (elementwise to ``[-c, c]``), or ``clipnorm`` (each
   gradient scaled by ``c / max(||g||, c)``), or ``global_clipnorm`` (every gradient scaled by
   ``c / max(sqrt(sum_i ||g_i||^2), c)``); at most one of the three may be set;
3. compute the learning rate (a float, kept in a Variable so changing it reaches compiled
   steps, or ``schedule(iterations)`` with ``iterations`` counted before this step);
4. update every variable with the optimizer's rule (weight decay included, coupled or
   decoupled as the optimizer documents), then apply its ``constraint`` if it has one;
5. increment ``iterations``.

All of it is written with :mod:`unidl.ops`, so it runs on every backend and inside
``tf.function``. Per-step scalars (learning rate, bias corrections) are computed once per
step in the optimizer's scalar dtype (``float64`` when the variables are float64, else
``float32``) and cast to each variable dtype once.
"""

from __future__ import annotations

from contextlib import nullcontext
from types import SimpleNamespace

import numpy as np

from unidl import dtypes as _dt
from unidl.backend.state import current_backend, current_device, device
from unidl.optimizers.schedules import LearningRateSchedule
from unidl.variables import Variable

__all__ = ["Optimizer"]


_OPS = []


def _ops():
    """``unidl.ops`` (imported on first use; cached, as this is on the training hot path)."""
    if not _OPS:
        from unidl import ops

        _OPS.append(ops)
    return _OPS[0]


def _np_dtype(dt):
    return np.dtype(np.float32) if dt == "bfloat16" else _dt.numpy_dtype(dt)


def _on(dev):
    """A context placing new tensors on ``dev`` (a no-op when it is the current device)."""
    return device(dev) if dev != current_device() else nullcontext()


def _check_positive(cls, name, value, allow_zero=False):
    if value is None:
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{cls}: {name} must be a number, got {value!r}") from None
    if value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{cls}: {name} must be {'>= 0' if allow_zero else '> 0'}, "
                         f"got {value}")
    return value


class Optimizer:
    """Base class of unidl's optimizers.

    Args:
        learning_rate: a float, a :class:`~unidl.optimizers.schedules.LearningRateSchedule`
            (called with the step count before the update), or a callable of no arguments.
        weight_decay: L2 coefficient; how it enters the update is said by each optimizer.
        clipnorm: clip each gradient to this L2 norm.
        clipvalue: clip each gradient elementwise to ``[-clipvalue, clipvalue]``.
        global_clipnorm: clip all gradients together to this global L2 norm.
        name: a label for the optimizer and its state variables.

    Attributes:
        iterations: the number of steps applied (an ``int64`` :class:`unidl.Variable`).
        variables: every state Variable (iterations, learning rate, slots), in a fixed order:
            assign saved values to the same list of a freshly built optimizer to restore it.

    Subclasses set ``_slot_names`` (their per-variable state: ``(suffix, initial_value)``)
    and implement ``_constants()``, ``_step_scalars(lr, step)`` and
    ``_update(var, p, g, slots, s, c, decay)``.
    """

    _slot_names: tuple = ()  # ((suffix, initial value), ...)
    _uses_step = False  # whether _step_scalars needs the step count t = iterations + 1
    _coupled_decay = True  # weight decay added to the gradient (g + wd * p), as torch.optim

    def __init__(self, learning_rate=0.001, *, weight_decay=None, clipnorm=None, clipvalue=None,
                 global_clipnorm=None, name=None):
        cls = type(self).__name__
        self.name = name or cls.lower()
        self.weight_decay = _check_positive(cls, "weight_decay", weight_decay, allow_zero=True)
        self.clipnorm = _check_positive(cls, "clipnorm", clipnorm)
        self.clipvalue = _check_positive(cls, "clipvalue", clipvalue)
        self.global_clipnorm = _check_positive(cls, "global_clipnorm", global_clipnorm)
        chosen = [n for n in ("clipnorm", "clipvalue", "global_clipnorm")
                  if getattr(self, n) is not None]
        if len(chosen) > 1:
            raise ValueError(f"{cls}: only one of clipnorm, clipvalue and global_clipnorm may be "
                             f"set, got {', '.join(chosen)}")
        self._schedule = None
        self._lr_float = None
        self._set_lr(learning_rate, cls)
        self._iterations = None
        self._lr_var = None
        self._scalar_vars: list[Variable] = []
        self._sdt = None  # dtype of the per-step scalars
        self._index: dict[int, int] = {}
        self._tracked: list[Variable] = []
        self._slots: list[tuple] = []
        self._decay_on: list[bool] = []
        self._devices: list[str] = []
        self._const_cache: dict = {}
        self._no_decay_ids: set[int] = set()
        self._no_decay_names: tuple = ()

    # -- configuration ---------------------------------------------------------------------------
    def _set_lr(self, lr, cls):
        if isinstance(lr, LearningRateSchedule) or (callable(lr) and not isinstance(lr, Variable)):
            self._schedule, self._lr_float = lr, None
            return
        try:
            value = float(lr)
        except (TypeError, ValueError):
            raise TypeError(f"{cls}: learning_rate must be a float, a LearningRateSchedule or a "
                            f"callable, got {type(lr).__name__}") from None
        if value < 0:
            raise ValueError(f"{cls}: learning_rate must be >= 0, got {value}")
        self._schedule, self._lr_float = None, value

    @property
    def learning_rate(self):
        """The current learning rate: the learning-rate Variable, or the schedule's value at
        the current step (a tensor). Assign a float to change it (not for schedules)."""
        if self._schedule is not None:
            return self._current_lr()
        self._ensure_scalars()
        return self._lr_var

    @learning_rate.setter
    def learning_rate(self, value):
        cls = type(self).__name__
        if self._schedule is not None:
            raise TypeError(f"{cls} was created with a learning-rate schedule; its learning rate "
                            "cannot be set")
        if isinstance(value, LearningRateSchedule) or callable(value):
            if self._lr_var is not None:
                raise TypeError(f"{cls}: cannot switch a built optimizer to a schedule")
            self._set_lr(value, cls)
            return
        self._set_lr(value, cls)
        if self._lr_var is not None:
            self._lr_var.assign(self._lr_float)

    @property
    def iterations(self) -> Variable:
        self._ensure_scalars()
        return self._iterations

    @property
    def variables(self) -> list[Variable]:
        """Every state Variable, in a fixed order (see the class docstring)."""
        self._ensure_scalars()
        out = [self._iterations]
        if self._lr_var is not None:
            out.append(self._lr_var)
        out.extend(self._scalar_vars)
        for slots in self._slots:
            out.extend(slots)
        return out

    def exclude_from_weight_decay(self, variables=None, names=None):
        """Exempt ``variables`` (and those whose name contains one of ``names``) from weight
        decay. Call before the first step."""
        self._no_decay_ids.update(id(v) for v in (variables or ()))
        self._no_decay_names = tuple(names or ())

    def get_config(self) -> dict:
        lr = self._schedule if self._schedule is not None else self._lr_float
        return {"name": self.name, "learning_rate": lr, "weight_decay": self.weight_decay,
                "clipnorm": self.clipnorm, "clipvalue": self.clipvalue,
                "global_clipnorm": self.global_clipnorm}

    def __repr__(self) -> str:
        cfg = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if v is not None)
        return f"{type(self).__name__}({cfg})"

    # -- state -----------------------------------------------------------------------------------
    def _ensure_scalars(self, variables=()):
        if self._iterations is not None:
            return
        self._sdt = "float64" if any(v.dtype == "float64" for v in variables) else "float32"
        self._iterations = Variable(0, trainable=False, name=f"{self.name}/iterations",
                                    dtype="int64")
        if self._schedule is None:
            self._lr_var = Variable(self._lr_float, trainable=False,
                                    name=f"{self.name}/learning_rate", dtype=self._sdt)
        self._scalar_vars = self._make_scalar_vars(self._sdt)

    def _make_scalar_vars(self, sdt) -> list[Variable]:
        """Extra optimizer-wide state (one per optimizer, not per variable)."""
        return []

    def build(self, variables) -> None:
        """Create the state for ``variables`` (done lazily by the first ``apply``; call it
        before restoring saved state, or before compiling a step with ``tf.function``)."""
        variables = list(variables)
        for v in variables:
            if not isinstance(v, Variable):
                raise TypeError(f"{type(self).__name__}: can only optimize unidl.Variable "
                                f"objects, got {type(v).__name__}")
        self._ensure_scalars(variables)
        for v in variables:
            if id(v) in self._index:
                continue
            slots = []
            if self._slot_names:
                with _on(v.device):
                    npdt = _np_dtype(v.dtype)
                    for suffix, init in self._slot_names_for(v):
                        slots.append(Variable(np.full(v.shape, init, dtype=npdt),
                                              trainable=False, name=f"{v.name}/{suffix}",
                                              dtype=v.dtype))
            self._index[id(v)] = len(self._tracked)
            self._tracked.append(v)
            self._slots.append(tuple(slots))
            self._devices.append(v.device)
            decay = bool(self.weight_decay) and id(v) not in self._no_decay_ids and not any(
                n in v.name for n in self._no_decay_names)
            self._decay_on.append(decay)

    def _slot_names_for(self, var):
        return self._slot_names

    @property
    def built(self) -> bool:
        return bool(self._tracked)

    # -- the step --------------------------------------------------------------------------------
    def _current_lr(self):
        ops = _ops()
        self._ensure_scalars()
        s = self._schedule
        if s is None:
            return self._lr_var.value
        if isinstance(s, LearningRateSchedule):
            lr = s(ops.cast(self._iterations.value, self._sdt))
        else:
            lr = s()
        lr = ops.convert_to_tensor(lr)
        return lr if ops.dtype(lr) == self._sdt else ops.cast(lr, self._sdt)

    def _step_scalars(self, lr, step):
        """Per-step scalars in the scalar dtype (``step`` = iterations + 1, or None)."""
        return (lr,)

    def _constants(self) -> dict:
        """The Python-float hyperparameters the update multiplies by, by name. They are made
        native 0-d tensors once per variable dtype and device, so every op of the update takes
        the dispatcher's fast tensor-with-tensor path."""
        return {}

    def _consts(self, dt, dev):
        key = (dt, dev)
        c = self._const_cache.get(key)
        if c is not None:
            return c
        ops = _ops()
        values = self._constants()
        if self.weight_decay:
            values["weight_decay"] = self.weight_decay
        npdt = _np_dtype(dt)
        with _on(dev):
            c = SimpleNamespace(**{k: ops.convert_to_tensor(np.asarray(v, npdt), dt)
                                   for k, v in values.items()})
        try:  # cache only concrete tensors (not the symbols of a function being traced)
            for x in vars(c).values():
                ops.to_numpy(x)
            self._const_cache[key] = c
        except Exception:
            pass
        return c

    def _update(self, var, p, g, slots, s, c, decay):  # pragma: no cover - abstract
        """Assign the new value of ``var`` (current value ``p``, gradient ``g``) and of its
        ``slots``; ``s`` are the step scalars and ``c`` the constants (see :meth:`_constants`)
        in ``var``'s dtype; ``decay`` says whether a decoupled weight decay applies to ``var``
        (coupled decay is already in ``g``)."""
        raise NotImplementedError

    def apply_gradients(self, grads_and_vars):
        """``apply`` for a sequence of ``(gradient, variable)`` pairs."""
        pairs = list(grads_and_vars)
        return self.apply([g for g, _ in pairs], [v for _, v in pairs])

    def apply(self, grads, variables=None):
        """Apply one step: update ``variables`` (default: those already built) with ``grads``
        (one per variable, ``None`` to skip one)."""
        ops = _ops()
        grads = list(grads)
        if variables is None:
            if not self._tracked:
                raise ValueError(f"{type(self).__name__}.apply: pass the variables (the "
                                 "optimizer is not built yet)")
            variables = self._tracked
        variables = list(variables)
        if len(grads) != len(variables):
            raise ValueError(f"{type(self).__name__}.apply: got {len(grads)} gradients for "
                             f"{len(variables)} variables")
        index = self._index
        new = [v for g, v in zip(grads, variables) if g is not None and id(v) not in index]
        if new:
            self.build(new)
        be = current_backend()
        is_t, dtype_of, shape_of = be.is_tensor, be.dtype_of, be.shape_of
        gs, vs = [], []
        for g, v in zip(grads, variables):
            if g is None:
                continue
            if not isinstance(v, Variable):
                raise TypeError(f"{type(self).__name__}: can only optimize unidl.Variable "
                                f"objects, got {type(v).__name__}")
            if not is_t(g):
                g = ops.convert_to_tensor(g)
            if dtype_of(g) != v.dtype:
                g = ops.cast(g, v.dtype)
            shape = tuple(shape_of(g))
            if shape != v.shape and None not in shape:
                raise ValueError(f"{type(self).__name__}: gradient of shape {shape} for variable "
                                 f"{v.name!r} of shape {v.shape}")
            gs.append(g)
            vs.append(v)
        if not vs:
            return
        gs = self._clip(gs)
        sdt = self._sdt
        step = None
        if self._uses_step:
            step = ops.cast(ops.add(self._iterations.value, 1), sdt)
        lr = self._current_lr()
        fused = self._fused_kernel(be)
        if fused is not None and fused(self, vs, gs, [self._slots[index[id(v)]] for v in vs],
                                       lr, step, [self._decay_on[index[id(v)]] for v in vs]):
            self._finish_step(vs)
            return
        base = self._step_scalars(lr, step)
        by_dtype = {sdt: base}
        slots_of, decay_of, dev_of = self._slots, self._decay_on, self._devices
        coupled = self._coupled_decay
        consts = self._const_cache
        for g, v in zip(gs, vs):
            dt = v.dtype
            s = by_dtype.get(dt)
            if s is None:
                s = by_dtype[dt] = tuple(
                    ops.cast(x, dt) if x is not None and not isinstance(x, float) else x
                    for x in base)
            i = index[id(v)]
            c = consts.get((dt, dev_of[i])) or self._consts(dt, dev_of[i])
            p = ops.stop_gradient(v.value)
            if coupled and decay_of[i]:
                g = ops.add(g, ops.multiply(p, c.weight_decay))
            self._update(v, p, g, slots_of[i], s, c, decay_of[i] and not coupled)
        self._finish_step(vs)

    #: name of the backend's fused kernel for this update (``Backend.optimizer_kernels``)
    fused_kernel_name: str | None = None

    def _fused_kernel(self, be):
        """The backend's fused update for this optimizer, if it has one (e.g. torch's
        ``_foreach`` Adam); it computes exactly the documented update."""
        name = self.fused_kernel_name
        kernels = getattr(be, "optimizer_kernels", None)
        return kernels.get(name) if kernels and name else None

    def _finish_step(self, vs):
        ops = _ops()
        for v in vs:
            constraint = getattr(v, "constraint", None)
            if constraint is not None:
                v.assign(constraint(v.value))
        self._iterations.assign(ops.add(self._iterations.value, 1))

    # -- gradient clipping -------------------------------------------------------------------------
    def _clip(self, gs):
        ops = _ops()
        if self.clipvalue is not None:
            c = self.clipvalue
            return [ops.clip(g, -c, c) for g in gs]
        if self.clipnorm is not None:
            c = self.clipnorm
            return [ops.divide(ops.multiply(g, c),
                               ops.maximum(ops.sqrt(ops.sum(ops.square(g))), c)) for g in gs]
        if self.global_clipnorm is not None:
            c = self.global_clipnorm
            wide = "float64" if any(ops.dtype(g) == "float64" for g in gs) else "float32"
            total = None
            for g in gs:
                sq = ops.sum(ops.square(g))
                if ops.dtype(sq) != wide:
                    sq = ops.cast(sq, wide)
                total = sq if total is None else ops.add(total, sq)
            scale = ops.divide(c, ops.maximum(ops.sqrt(total), c))
            out = []
            for g in gs:
                sc = scale if ops.dtype(g) == wide else ops.cast(scale, ops.dtype(g))
                out.append(ops.multiply(g, sc))
            return out
        return gs
