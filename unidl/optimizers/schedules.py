"""Learning-rate schedules (Keras 3 semantics): ``schedule(step) -> learning rate``.

An optimizer calls its schedule with its ``iterations`` *before* the step (0 on the first
update), as a float tensor; a schedule also accepts a Python number and then returns a
Python float. The tensor path uses only :mod:`unidl.ops`, so it runs on every backend and
inside compiled functions (``tf.function``).

Example:
    >>> from unidl.optimizers.schedules import ExponentialDecay
    >>> round(ExponentialDecay(0.1, decay_steps=10, decay_rate=0.5)(10), 6)
    0.05
"""

from __future__ import annotations

import math
import numbers

from unidl import dtypes as _dt

__all__ = ["LearningRateSchedule", "ExponentialDecay", "PiecewiseConstantDecay", "CosineDecay"]


_OPS = []


def _ops():
    """``unidl.ops`` (imported on first use; cached, as this is on the training hot path)."""
    if not _OPS:
        from unidl import ops

        _OPS.append(ops)
    return _OPS[0]


def _is_number(step) -> bool:
    return isinstance(step, numbers.Number)


def _float_step(step):
    """``step`` as a float tensor (integer steps become float32)."""
    ops = _ops()
    step = ops.convert_to_tensor(step)
    if not _dt.is_float(ops.dtype(step)):
        step = ops.cast(step, _dt.DEFAULT_FLOAT)
    return step


class LearningRateSchedule:
    """Base class: subclasses implement ``__call__(step)`` and ``get_config()``."""

    def __call__(self, step):  # pragma: no cover - abstract
        raise NotImplementedError

    def get_config(self) -> dict:
        raise NotImplementedError

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class ExponentialDecay(LearningRateSchedule):
    """``initial_learning_rate * decay_rate ** (step / decay_steps)``.

    With ``staircase=True`` the exponent is ``floor(step / decay_steps)`` (the rate drops
    every ``decay_steps`` steps).

    Raises:
        ValueError: ``decay_steps <= 0``.
    """

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False,
                 name="ExponentialDecay"):
        if decay_steps <= 0:
            raise ValueError(f"ExponentialDecay: decay_steps must be > 0, got {decay_steps}")
        self.initial_learning_rate = float(initial_learning_rate)
        self.decay_steps = decay_steps
        self.decay_rate = float(decay_rate)
        self.staircase = bool(staircase)
        self.name = name

    def __call__(self, step):
        if _is_number(step):
            p = step / self.decay_steps
            if self.staircase:
                p = math.floor(p)
            return self.initial_learning_rate * self.decay_rate ** p
        ops = _ops()
        step = _float_step(step)
        p = ops.divide(step, float(self.decay_steps))
        if self.staircase:
            p = ops.floor(p)
        return ops.multiply(ops.power(self.decay_rate, p), self.initial_learning_rate)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate,
                "decay_steps": self.decay_steps, "decay_rate": self.decay_rate,
                "staircase": self.staircase, "name": self.name}


class PiecewiseConstantDecay(LearningRateSchedule):
    """``values[0]`` while ``step <= boundaries[0]``, ``values[1]`` while
    ``boundaries[0] < step <= boundaries[1]``, ..., ``values[-1]`` after the last boundary.

    Raises:
        ValueError: ``len(values) != len(boundaries) + 1`` or boundaries not increasing.
    """

    def __init__(self, boundaries, values, name="PiecewiseConstant"):
        boundaries, values = list(boundaries), list(values)
        if len(values) != len(boundaries) + 1:
            raise ValueError(
                f"PiecewiseConstantDecay: need one more value than boundaries, got "
                f"{len(boundaries)} boundaries and {len(values)} values")
        if any(b >= c for b, c in zip(boundaries, boundaries[1:])):
            raise ValueError(f"PiecewiseConstantDecay: boundaries must increase, got {boundaries}")
        self.boundaries = boundaries
        self.values = [float(v) for v in values]
        self.name = name

    def __call__(self, step):
        if _is_number(step):
            for b, v in zip(self.boundaries, self.values):
                if step <= b:
                    return v
            return self.values[-1]
        ops = _ops()
        step = _float_step(step)
        out = ops.full_like(step, self.values[-1])
        for b, v in zip(reversed(self.boundaries), reversed(self.values[:-1])):
            out = ops.where(ops.less_equal(step, float(b)), v, out)
        return out

    def get_config(self):
        return {"boundaries": self.boundaries, "values": self.values, "name": self.name}


class CosineDecay(LearningRateSchedule):
    """Cosine decay with an optional linear warmup (``keras.optimizers.schedules.CosineDecay``).

    Without warmup (``warmup_target=None``)::

        s = min(step, decay_steps)
        lr = initial_learning_rate * ((1 - alpha) * 0.5 * (1 + cos(pi * s / decay_steps)) + alpha)

    With ``warmup_target``, the rate first rises linearly from ``initial_learning_rate`` to
    ``warmup_target`` over ``warmup_steps`` steps, then decays from ``warmup_target`` as above
    over the next ``decay_steps`` steps (``s = min(step, warmup_steps + decay_steps) -
    warmup_steps``).
    """

    def __init__(self, initial_learning_rate, decay_steps, alpha=0.0, name="CosineDecay",
                 warmup_target=None, warmup_steps=0):
        if decay_steps <= 0:
            raise ValueError(f"CosineDecay: decay_steps must be > 0, got {decay_steps}")
        if warmup_steps < 0:
            raise ValueError(f"CosineDecay: warmup_steps must be >= 0, got {warmup_steps}")
        self.initial_learning_rate = float(initial_learning_rate)
        self.decay_steps = decay_steps
        self.alpha = float(alpha)
        self.name = name
        self.warmup_target = None if warmup_target is None else float(warmup_target)
        self.warmup_steps = warmup_steps

    def _decayed(self, frac, cos):
        return (1.0 - self.alpha) * 0.5 * (1.0 + cos(math.pi * frac)) + self.alpha

    def __call__(self, step):
        wt, ws, ds = self.warmup_target, self.warmup_steps, float(self.decay_steps)
        if _is_number(step):
            if wt is None:
                s = min(step, ds)
                return self.initial_learning_rate * self._decayed(s / ds, math.cos)
            s = min(step, ds + ws)
            if s < ws:
                return (wt - self.initial_learning_rate) * (s / ws) + self.initial_learning_rate
            return wt * self._decayed((s - ws) / ds, math.cos)
        ops = _ops()
        step = _float_step(step)
        if wt is None:
            s = ops.minimum(step, ds)
            frac = ops.divide(s, ds)
            return ops.multiply(self._tensor_decayed(frac), self.initial_learning_rate)
        s = ops.minimum(step, ds + ws)
        warm = ops.add(ops.multiply(ops.divide(s, float(max(ws, 1))),
                                    wt - self.initial_learning_rate),
                       self.initial_learning_rate)
        frac = ops.divide(ops.subtract(s, float(ws)), ds)
        decayed = ops.multiply(self._tensor_decayed(frac), wt)
        return ops.where(ops.less(s, float(ws)), warm, decayed)

    def _tensor_decayed(self, frac):
        ops = _ops()
        c = ops.multiply(ops.add(ops.cos(ops.multiply(frac, math.pi)), 1.0), 0.5)
        return ops.add(ops.multiply(c, 1.0 - self.alpha), self.alpha)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate,
                "decay_steps": self.decay_steps, "alpha": self.alpha, "name": self.name,
                "warmup_target": self.warmup_target, "warmup_steps": self.warmup_steps}
