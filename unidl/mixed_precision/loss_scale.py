"""Dynamic loss scaling for float16 training: :class:`LossScaleOptimizer`."""

from __future__ import annotations

from unidl import dtypes as _dt
from unidl.optimizers.base import Optimizer, _ops
from unidl.variables import Variable

__all__ = ["LossScaleOptimizer", "needs_loss_scaling", "wrap_for"]


def _snapshot(t, zero):
    """A copy of ``t`` that later in-place updates of its Variable do not change. ``zero``
    is a float32 zero computed from run-time data: a compiler may fold ``t + 0`` with a
    constant 0 into ``t`` itself (``torch.compile`` does), an alias the update overwrites."""
    ops = _ops()
    dt = ops.dtype(t)
    return ops.stop_gradient(ops.add(t, zero if dt == "float32" else ops.cast(zero, dt)))


def _all_finite(grads):
    """A scalar bool tensor: every element of every gradient is finite."""
    ops = _ops()
    ok = None
    for g in grads:
        g_ok = ops.all(ops.isfinite(g))
        ok = g_ok if ok is None else ops.logical_and(ok, g_ok)
    return ok


class LossScaleOptimizer(Optimizer):
    """Dynamic loss scaling around ``inner_optimizer`` (Keras 3's
    ``keras.optimizers.LossScaleOptimizer``), for training in float16.

    Small float16 gradients underflow to zero. The train step multiplies the loss by
    :attr:`scale` (:meth:`scale_loss`) before differentiating, so the gradients are
    ``scale`` times larger while they flow through the float16 layers; :meth:`apply`
    divides them by ``scale`` again (in float32) and then:

    * if every gradient is finite, the inner optimizer takes its step; after
      ``dynamic_growth_steps`` such steps in a row the scale doubles;
    * if any gradient element is inf or NaN, the step is skipped (the variables and the
      inner optimizer's state, its ``iterations`` included, keep their values), the scale
      is halved (never below 1) and the count of good steps restarts.

    The choice is made with ``where`` on the new values, not with a Python ``if``, so the
    step traces into one graph (``tf.function``, ``torch.compile``). ``Model.compile`` wraps
    the optimizer in one automatically when the model (or one of its layers) computes in
    float16 (not for bfloat16, whose exponent range is float32's).

    Args:
        inner_optimizer: the optimizer (or its name) that takes the steps.
        initial_scale: the first loss scale (default ``2**15``).
        dynamic_growth_steps: good steps in a row after which the scale doubles (2000).
        name: a label for the state variables.

    Example:
        >>> import unidl
        >>> from unidl import ops
        >>> from unidl.mixed_precision import LossScaleOptimizer
        >>> with unidl.use_backend("numpy"):
        ...     w = unidl.Variable([1.0, 2.0])
        ...     opt = LossScaleOptimizer("sgd", initial_scale=8.0)
        ...     opt.apply([ops.convert_to_tensor([float("inf"), 0.0])], [w])  # skipped
        ...     opt.apply([ops.convert_to_tensor([4.0, 4.0])], [w])  # 4/4: gradient 1
        ...     w.numpy().tolist(), float(opt.scale), int(opt.iterations)
        ([0.9900000095367432, 1.9900000095367432], 4.0, 1)
    """

    def __init__(self, inner_optimizer, initial_scale=2.0 ** 15, dynamic_growth_steps=2000,
                 name=None):
        from unidl import optimizers

        inner = optimizers.get(inner_optimizer)
        if isinstance(inner, LossScaleOptimizer):
            raise ValueError("LossScaleOptimizer: the inner optimizer is already a "
                             "LossScaleOptimizer")
        try:
            initial_scale = float(initial_scale)
        except (TypeError, ValueError):
            initial_scale = -1.0
        if not initial_scale >= 1.0:
            raise ValueError(f"LossScaleOptimizer: initial_scale must be a number >= 1, got "
                             f"{initial_scale!r}")
        if isinstance(dynamic_growth_steps, bool) or int(dynamic_growth_steps) < 1 or \
                int(dynamic_growth_steps) != dynamic_growth_steps:
            raise ValueError("LossScaleOptimizer: dynamic_growth_steps must be a positive int, "
                             f"got {dynamic_growth_steps!r}")
        self.inner_optimizer = inner
        self.initial_scale = initial_scale
        self.dynamic_growth_steps = int(dynamic_growth_steps)
        self.name = name or "loss_scale_optimizer"
        self._scale = None
        self._good_steps = None

    # -- state -----------------------------------------------------------------------------------
    def _ensure_state(self):
        if self._scale is None:
            self._scale = Variable(self.initial_scale, trainable=False,
                                   name=f"{self.name}/scale", dtype="float32")
            self._good_steps = Variable(0, trainable=False, name=f"{self.name}/good_steps",
                                        dtype="int64")

    @property
    def scale(self) -> Variable:
        """The current loss scale (a float32 :class:`unidl.Variable`)."""
        self._ensure_state()
        return self._scale

    @property
    def good_steps(self) -> Variable:
        """Finite steps since the scale last changed (an int64 :class:`unidl.Variable`)."""
        self._ensure_state()
        return self._good_steps

    @property
    def variables(self) -> list:
        """``[scale, good_steps]`` followed by the inner optimizer's variables."""
        self._ensure_state()
        return [self._scale, self._good_steps] + self.inner_optimizer.variables

    @property
    def iterations(self) -> Variable:
        """The inner optimizer's step count (skipped steps are not counted)."""
        return self.inner_optimizer.iterations

    @property
    def learning_rate(self):
        return self.inner_optimizer.learning_rate

    @learning_rate.setter
    def learning_rate(self, value):
        self.inner_optimizer.learning_rate = value

    @property
    def built(self) -> bool:
        return self.inner_optimizer.built

    def build(self, variables) -> None:
        self._ensure_state()
        self.inner_optimizer.build(variables)

    def exclude_from_weight_decay(self, variables=None, names=None):
        self.inner_optimizer.exclude_from_weight_decay(variables, names)

    def __getattr__(self, name):  # (weight_decay, clipnorm... of the inner optimizer)
        if name.startswith("__") or name == "inner_optimizer":
            raise AttributeError(name)
        return getattr(self.inner_optimizer, name)

    def get_config(self) -> dict:
        return {"inner_optimizer": self.inner_optimizer, "initial_scale": self.initial_scale,
                "dynamic_growth_steps": self.dynamic_growth_steps, "name": self.name}

    def __repr__(self) -> str:
        return (f"LossScaleOptimizer({self.inner_optimizer!r}, initial_scale="
                f"{self.initial_scale}, dynamic_growth_steps={self.dynamic_growth_steps})")

    # -- the step --------------------------------------------------------------------------------
    def scaled_loss_fn(self, loss_fn):
        """``loss_fn`` (returning ``(loss, aux)``) made to return ``(scale_loss(loss), (loss,
        aux))``: the train step differentiates the scaled loss and reports the loss."""
        def scaled(*args):
            loss, aux = loss_fn(*args)
            return self.scale_loss(loss), (loss, aux)

        return scaled

    def scale_loss(self, loss):
        """``loss * scale`` (in the loss's dtype): what the train step differentiates."""
        ops = _ops()
        s = self.scale.value
        return ops.multiply(loss, s if ops.dtype(loss) == "float32" else
                            ops.cast(s, ops.dtype(loss)))

    def apply(self, grads, variables=None):
        """Unscale ``grads``, then step the inner optimizer if they are all finite, else
        skip the step; update the scale (see the class docstring)."""
        ops = _ops()
        inner = self.inner_optimizer
        grads = list(grads)
        if variables is None:
            variables = inner._tracked
        variables = list(variables)
        self.build([v for g, v in zip(grads, variables) if g is not None])
        scale = self._scale.value
        inv = ops.divide(ops.ones((), "float32"), scale)
        pairs = []
        for g, v in zip(grads, variables):
            if g is None:
                continue
            g = ops.convert_to_tensor(g)
            if ops.dtype(g) != v.dtype and _dt.is_float(v.dtype):
                g = ops.cast(g, v.dtype)
            pairs.append((ops.multiply(g, inv if ops.dtype(g) == "float32" else
                                       ops.cast(inv, ops.dtype(g))), v))
        if not pairs:
            return
        finite = _all_finite([g for g, _ in pairs])
        state = [v for _, v in pairs] + inner.variables
        zero = ops.minimum(scale, 0.0)  # (the scale is >= 1: a zero no compiler can fold)
        before = [_snapshot(v.value, zero) for v in state]
        safe = [ops.where(finite, g, ops.zeros_like(g)) for g, _ in pairs]
        inner.apply(safe, [v for _, v in pairs])
        for v, old in zip(state, before):
            v.assign(ops.where(finite, ops.stop_gradient(v.value), old))
        self._update_scale(finite)

    def _update_scale(self, finite):
        ops = _ops()
        scale, good = self._scale.value, self._good_steps.value
        good = ops.where(finite, ops.add(good, 1), ops.zeros_like(good))
        grow = ops.greater_equal(good, self.dynamic_growth_steps)
        new_scale = ops.where(finite, ops.where(grow, ops.multiply(scale, 2.0), scale),
                              ops.maximum(ops.multiply(scale, 0.5), 1.0))
        self._good_steps.assign(ops.where(grow, ops.zeros_like(good), good))
        self._scale.assign(new_scale)


def needs_loss_scaling(model) -> bool:
    """Whether ``model`` or one of its nested layers computes in float16 (``compile`` then
    wraps the optimizer in a :class:`LossScaleOptimizer`)."""
    stack = [model]
    while stack:
        layer = stack.pop()
        if getattr(layer, "compute_dtype", None) == "float16" and \
                getattr(layer, "dtype", None) != "float16":
            return True
        stack.extend(getattr(layer, "_tracked_layers", ()))
    return False


def wrap_for(model, optimizer):
    """``optimizer`` wrapped in a :class:`LossScaleOptimizer` when ``model`` needs loss
    scaling (:func:`needs_loss_scaling`) and it is not one already (``Model.compile``)."""
    if isinstance(optimizer, LossScaleOptimizer) or not needs_loss_scaling(model):
        return optimizer
    return LossScaleOptimizer(optimizer)
