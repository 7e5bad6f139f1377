"""Pruning schedules: when to update the masks, and to which sparsity (TF-MOT's names and
semantics).

A schedule is called with the pruning step (the number of training batches run under
:class:`~unidl.pruning.UpdatePruningStep`, counted from 0) and returns
``(should_prune, sparsity)``: whether the masks are recomputed before that step, and the
fraction of weights they then zero. Masks are recomputed at ``begin_step`` and every
``frequency`` steps after it, up to ``end_step`` (``-1``: no end); between updates they stay
as they are (and the optimizer keeps the pruned weights at zero).

Example:
    >>> from unidl.pruning import ConstantSparsity, PolynomialDecay
    >>> ConstantSparsity(0.8, begin_step=0, frequency=100)(200)
    (True, 0.8)
    >>> ConstantSparsity(0.8, begin_step=0, frequency=100)(150)
    (False, 0.8)
    >>> s = PolynomialDecay(0.0, 0.5, begin_step=0, end_step=100, power=1, frequency=10)
    >>> s(50)
    (True, 0.25)
"""

from __future__ import annotations

# (the public classes of this module are the ones saved files may name: unidl.saving.registry;
# the abstract base is exported by unidl.pruning)
__all__ = ["ConstantSparsity", "PolynomialDecay"]


def _fraction(cls, name, value, allow_one=False):
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{cls}: {name} must be a number in [0, 1), got {value!r}") from None
    if not (0.0 <= value < 1.0 or (allow_one and value == 1.0)):
        raise ValueError(f"{cls}: {name} must be in [0, 1), got {value} (1.0 would remove "
                         "every weight)")
    return value


def _step(cls, name, value, allow_minus_one=False):
    if isinstance(value, bool) or not isinstance(value, int) or value < (
            -1 if allow_minus_one else 0) or (allow_minus_one and value < 0 and value != -1):
        low = "an int >= 0 (or -1 for no end)" if allow_minus_one else "an int >= 0"
        raise ValueError(f"{cls}: {name} must be {low}, got {value!r}")
    return value


class PruningSchedule:
    """Base class: ``schedule(step) -> (should_prune, sparsity)`` (see the module docstring).

    Subclasses define :meth:`sparsity_at` and set ``begin_step``, ``end_step`` and
    ``frequency``; :meth:`get_config` returns the constructor's arguments.
    """

    begin_step = 0
    end_step = -1
    frequency = 100

    def sparsity_at(self, step: int) -> float:  # pragma: no cover - abstract
        """The target sparsity at ``step``."""
        raise NotImplementedError

    def should_prune(self, step: int) -> bool:
        """Whether the masks are recomputed before ``step``: inside ``[begin_step,
        end_step]`` and a multiple of ``frequency`` after ``begin_step``."""
        step = int(step)
        in_range = step >= self.begin_step and (self.end_step == -1 or step <= self.end_step)
        return in_range and (step - self.begin_step) % self.frequency == 0

    def __call__(self, step):
        step = int(step)
        return self.should_prune(step), self.sparsity_at(step)

    def get_config(self) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other):
        return type(self) is type(other) and self.get_config() == other.get_config()

    __hash__ = object.__hash__


class ConstantSparsity(PruningSchedule):
    """Prune to ``target_sparsity`` at ``begin_step`` and every ``frequency`` steps until
    ``end_step`` (``-1``: until training stops).

    Example:
        >>> from unidl.pruning import ConstantSparsity
        >>> s = ConstantSparsity(0.5, begin_step=10, end_step=30, frequency=10)
        >>> [s(t)[0] for t in (0, 10, 15, 20, 30, 40)]
        [False, True, False, True, True, False]
    """

    def __init__(self, target_sparsity, begin_step=0, end_step=-1, frequency=100):
        cls = type(self).__name__
        self.target_sparsity = _fraction(cls, "target_sparsity", target_sparsity)
        self.begin_step = _step(cls, "begin_step", begin_step)
        self.end_step = _step(cls, "end_step", end_step, allow_minus_one=True)
        self.frequency = _step(cls, "frequency", frequency)
        if self.frequency < 1:
            raise ValueError(f"{cls}: frequency must be >= 1, got {frequency}")
        if self.end_step != -1 and self.end_step < self.begin_step:
            raise ValueError(f"{cls}: end_step ({end_step}) must be >= begin_step "
                             f"({begin_step}), or -1")

    def sparsity_at(self, step):
        return self.target_sparsity

    def get_config(self):
        return {"target_sparsity": self.target_sparsity, "begin_step": self.begin_step,
                "end_step": self.end_step, "frequency": self.frequency}


class PolynomialDecay(PruningSchedule):
    """Sparsity rising from ``initial_sparsity`` at ``begin_step`` to ``final_sparsity`` at
    ``end_step`` along ``final + (initial - final) * (1 - p) ** power``, with ``p`` the
    fraction of ``[begin_step, end_step]`` done (clipped to [0, 1]); masks recomputed every
    ``frequency`` steps in that range (TF-MOT's ``PolynomialDecay``).

    Example:
        >>> from unidl.pruning import PolynomialDecay
        >>> s = PolynomialDecay(0.5, 0.8, begin_step=0, end_step=1000, frequency=100)
        >>> [round(s(t)[1], 4) for t in (0, 500, 1000, 2000)]
        [0.5, 0.7625, 0.8, 0.8]
    """

    def __init__(self, initial_sparsity, final_sparsity, begin_step, end_step, power=3,
                 frequency=100):
        cls = type(self).__name__
        self.initial_sparsity = _fraction(cls, "initial_sparsity", initial_sparsity)
        self.final_sparsity = _fraction(cls, "final_sparsity", final_sparsity)
        self.begin_step = _step(cls, "begin_step", begin_step)
        self.end_step = _step(cls, "end_step", end_step)
        self.frequency = _step(cls, "frequency", frequency)
        self.power = float(power)
        if self.frequency < 1:
            raise ValueError(f"{cls}: frequency must be >= 1, got {frequency}")
        if self.end_step <= self.begin_step:
            raise ValueError(f"{cls}: end_step ({end_step}) must be > begin_step "
                             f"({begin_step}): the decay needs a range of steps")

    def sparsity_at(self, step):
        done = (int(step) - self.begin_step) / (self.end_step - self.begin_step)
        done = min(1.0, max(0.0, done))
        return (self.final_sparsity
                + (self.initial_sparsity - self.final_sparsity) * (1.0 - done) ** self.power)

    def get_config(self):
        return {"initial_sparsity": self.initial_sparsity,
                "final_sparsity": self.final_sparsity, "begin_step": self.begin_step,
                "end_step": self.end_step, "power": self.power, "frequency": self.frequency}
