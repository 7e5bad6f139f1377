"""Stochastic gradient descent, with momentum and Nesterov momentum as ``torch.optim.SGD``."""

from __future__ import annotations

from unidl.optimizers.base import Optimizer, _check_positive, _ops

__all__ = ["SGD"]


class SGD(Optimizer):
    """Gradient descent with optional (Nesterov) momentum, as ``torch.optim.SGD``
    (``dampening=0``).

    Update, with ``g`` the (clipped) gradient and ``p`` the variable::

        g = g + weight_decay * p                 # coupled L2, if weight_decay
        if momentum > 0:
            b = momentum * b + g                  # b starts at 0 (so b_1 = g_1, as torch)
            d = g + momentum * b if nesterov else b
        else:
            d = g
        p = p - lr * d

    With a constant learning rate this equals Keras' ``v = momentum * v - lr * g; p += v``
    (``v = -lr * b``); with a changing learning rate torch's form is the one implemented.

    Args:
        learning_rate: float or schedule (default 0.01).
        momentum: float >= 0 (default 0).
        nesterov: use Nesterov momentum (needs ``momentum > 0``).
        weight_decay, clipnorm, clipvalue, global_clipnorm, name: see
            :class:`~unidl.optimizers.base.Optimizer`.
    """

    fused_kernel_name = "sgd"

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, weight_decay=None,
                 clipnorm=None, clipvalue=None, global_clipnorm=None, name=None):
        super().__init__(learning_rate, weight_decay=weight_decay, clipnorm=clipnorm,
                         clipvalue=clipvalue, global_clipnorm=global_clipnorm, name=name)
        self.momentum = _check_positive("SGD", "momentum", momentum, allow_zero=True)
        self.nesterov = bool(nesterov)
        if self.nesterov and self.momentum == 0:
            raise ValueError("SGD: nesterov=True needs a momentum > 0")
        self._slot_names = (("momentum", 0.0),) if self.momentum > 0 else ()

    def _constants(self):
        return {"momentum": self.momentum}

    def _update(self, var, p, g, slots, s, c, decay):
        ops = _ops()
        lr = s[0]
        if slots:
            (buf,) = slots
            mu = c.momentum
            b = ops.add(ops.multiply(buf.value, mu), g)
            buf._assign_native(b)
            d = ops.add(g, ops.multiply(b, mu)) if self.nesterov else b
        else:
            d = g
        var._assign_native(ops.subtract(p, ops.multiply(d, lr)))

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}
