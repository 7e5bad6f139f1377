"""Lion (evolved sign momentum), as ``keras.optimizers.Lion``."""

from __future__ import annotations

from unidl.optimizers.adam import _check_beta
from unidl.optimizers.base import Optimizer, _ops

__all__ = ["Lion"]


class Lion(Optimizer):
    """Lion (Chen et al., 2023); torch.optim has no Lion, so Keras' rule is followed.

    Update::

        p = p * (1 - lr * weight_decay)          # decoupled, if weight_decay (as the paper)
        p = p - lr * sign(beta_1 * m + (1 - beta_1) * g)
        m = beta_2 * m + (1 - beta_2) * g

    Args:
        learning_rate: float or schedule (default 1e-4; Lion wants a 3-10x smaller rate than
            Adam).
        beta_1: interpolation factor of the update direction (default 0.9).
        beta_2: decay of the momentum (default 0.99).
    """

    _coupled_decay = False

    def __init__(self, learning_rate=1e-4, beta_1=0.9, beta_2=0.99, weight_decay=None,
                 clipnorm=None, clipvalue=None, global_clipnorm=None, name=None):
        super().__init__(learning_rate, weight_decay=weight_decay, clipnorm=clipnorm,
                         clipvalue=clipvalue, global_clipnorm=global_clipnorm, name=name)
        self.beta_1 = float(beta_1)
        if not 0.0 <= self.beta_1 <= 1.0:
            raise ValueError(f"Lion: beta_1 must be in [0, 1], got {beta_1}")
        self.beta_2 = _check_beta("Lion", "beta_2", beta_2)
        self._slot_names = (("momentum", 0.0),)

    def _step_scalars(self, lr, t):
        ops = _ops()
        decay = None
        if self.weight_decay:
            decay = ops.subtract(1.0, ops.multiply(lr, self.weight_decay))
        return (lr, decay)

    def _constants(self):
        b1, b2 = self.beta_1, self.beta_2
        return {"b1": b1, "b2": b2, "one_b1": 1.0 - b1, "one_b2": 1.0 - b2}

    def _update(self, var, p, g, slots, s, c, decay):
        ops = _ops()
        lr, factor = s
        (m_var,) = slots
        m = m_var.value
        direction = ops.add(ops.multiply(m, c.b1), ops.multiply(g, c.one_b1))
        if decay:
            p = ops.multiply(p, factor)
        var._assign_native(ops.subtract(p, ops.multiply(ops.sign(direction), lr)))
        m_var._assign_native(ops.add(ops.multiply(m, c.b2), ops.multiply(g, c.one_b2)))

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2}
