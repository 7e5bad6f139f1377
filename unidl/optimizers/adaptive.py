"""Per-coordinate adaptive optimizers: RMSprop, Adagrad, Adadelta (rules as ``torch.optim``)."""

from __future__ import annotations

from unidl.optimizers.base import Optimizer, _check_positive, _ops

__all__ = ["RMSprop", "Adagrad", "Adadelta"]


def _check_rho(cls, rho):
    rho = float(rho)
    if not 0.0 <= rho <= 1.0:
        raise ValueError(f"{cls}: rho must be in [0, 1], got {rho}")
    return rho


class RMSprop(Optimizer):
    """RMSprop (Hinton), as ``torch.optim.RMSprop`` (``alpha`` is Keras' ``rho``).

    Update::

        g = g + weight_decay * p                 # coupled L2, if weight_decay
        s = rho * s + (1 - rho) * g**2
        if centered:
            a = rho * a + (1 - rho) * g
            denom = sqrt(s - a**2) + epsilon
        else:
            denom = sqrt(s) + epsilon
        if momentum > 0:
            b = momentum * b + g / denom
            p = p - lr * b
        else:
            p = p - lr * g / denom

    ``epsilon`` is added outside the square root, as torch does (Keras adds it inside).
    Defaults are Keras'.
    """

    def __init__(self, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7,
                 centered=False, weight_decay=None, clipnorm=None, clipvalue=None,
                 global_clipnorm=None, name=None):
        super().__init__(learning_rate, weight_decay=weight_decay, clipnorm=clipnorm,
                         clipvalue=clipvalue, global_clipnorm=global_clipnorm, name=name)
        self.rho = _check_rho("RMSprop", rho)
        self.momentum = _check_positive("RMSprop", "momentum", momentum, allow_zero=True)
        self.epsilon = _check_positive("RMSprop", "epsilon", epsilon, allow_zero=True)
        self.centered = bool(centered)
        names = [("velocity", 0.0)]
        if self.centered:
            names.append(("average_gradient", 0.0))
        if self.momentum > 0:
            names.append(("momentum", 0.0))
        self._slot_names = tuple(names)

    def _constants(self):
        return {"rho": self.rho, "one_rho": 1.0 - self.rho, "eps": self.epsilon,
                "momentum": self.momentum}

    def _update(self, var, p, g, slots, s, c, decay):
        ops = _ops()
        rho, one_rho = c.rho, c.one_rho
        sq_var = slots[0]
        sq = ops.add(ops.multiply(sq_var.value, rho), ops.multiply(ops.square(g), one_rho))
        sq_var._assign_native(sq)
        k = 1
        if self.centered:
            avg_var = slots[1]
            avg = ops.add(ops.multiply(avg_var.value, rho), ops.multiply(g, one_rho))
            avg_var._assign_native(avg)
            sq = ops.subtract(sq, ops.square(avg))
            k = 2
        step = ops.divide(g, ops.add(ops.sqrt(sq), c.eps))
        if self.momentum > 0:
            buf_var = slots[k]
            step = ops.add(ops.multiply(buf_var.value, c.momentum), step)
            buf_var._assign_native(step)
        var._assign_native(ops.subtract(p, ops.multiply(step, s[0])))

    def get_config(self):
        return {**super().get_config(), "rho": self.rho, "momentum": self.momentum,
                "epsilon": self.epsilon, "centered": self.centered}


class Adagrad(Optimizer):
    """Adagrad (Duchi et al.), as ``torch.optim.Adagrad`` (``lr_decay=0``).

    Update, the accumulator starting at ``initial_accumulator_value``::

        g = g + weight_decay * p                 # coupled L2, if weight_decay
        acc = acc + g**2
        p = p - lr * g / (sqrt(acc) + epsilon)

    ``epsilon`` is added outside the square root, as torch does. Defaults are Keras'.
    """

    def __init__(self, learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-7,
                 weight_decay=None, clipnorm=None, clipvalue=None, global_clipnorm=None,
                 name=None):
        super().__init__(learning_rate, weight_decay=weight_decay, clipnorm=clipnorm,
                         clipvalue=clipvalue, global_clipnorm=global_clipnorm, name=name)
        self.initial_accumulator_value = _check_positive(
            "Adagrad", "initial_accumulator_value", initial_accumulator_value, allow_zero=True)
        self.epsilon = _check_positive("Adagrad", "epsilon", epsilon, allow_zero=True)
        self._slot_names = (("accumulator", self.initial_accumulator_value),)

    def _constants(self):
        return {"eps": self.epsilon}

    def _update(self, var, p, g, slots, s, c, decay):
        ops = _ops()
        (acc_var,) = slots
        acc = ops.add(acc_var.value, ops.square(g))
        acc_var._assign_native(acc)
        step = ops.divide(ops.multiply(g, s[0]), ops.add(ops.sqrt(acc), c.eps))
        var._assign_native(ops.subtract(p, step))

    def get_config(self):
        return {**super().get_config(),
                "initial_accumulator_value": self.initial_accumulator_value,
                "epsilon": self.epsilon}


class Adadelta(Optimizer):
    """Adadelta (Zeiler), as ``torch.optim.Adadelta``.

    Update::

        g = g + weight_decay * p                 # coupled L2, if weight_decay
        s = rho * s + (1 - rho) * g**2
        delta = sqrt(d + epsilon) / sqrt(s + epsilon) * g
        d = rho * d + (1 - rho) * delta**2
        p = p - lr * delta

    Defaults are Keras' (``learning_rate=0.001``; torch's is 1.0).
    """

    def __init__(self, learning_rate=0.001, rho=0.95, epsilon=1e-7, weight_decay=None,
                 clipnorm=None, clipvalue=None, global_clipnorm=None, name=None):
        super().__init__(learning_rate, weight_decay=weight_decay, clipnorm=clipnorm,
                         clipvalue=clipvalue, global_clipnorm=global_clipnorm, name=name)
        self.rho = _check_rho("Adadelta", rho)
        self.epsilon = _check_positive("Adadelta", "epsilon", epsilon, allow_zero=True)
        self._slot_names = (("accumulated_grad", 0.0), ("accumulated_delta", 0.0))

    def _constants(self):
        return {"rho": self.rho, "one_rho": 1.0 - self.rho, "eps": self.epsilon}

    def _update(self, var, p, g, slots, s, c, decay):
        ops = _ops()
        rho, eps = c.rho, c.eps
        sq_var, d_var = slots
        sq = ops.add(ops.multiply(sq_var.value, rho), ops.multiply(ops.square(g), c.one_rho))
        sq_var._assign_native(sq)
        d_old = d_var.value
        delta = ops.multiply(ops.divide(ops.sqrt(ops.add(d_old, eps)),
                                        ops.sqrt(ops.add(sq, eps))), g)
        d_var._assign_native(ops.add(ops.multiply(d_old, rho),
                                     ops.multiply(ops.square(delta), c.one_rho)))
        var._assign_native(ops.subtract(p, ops.multiply(delta, s[0])))

    def get_config(self):
        return {**super().get_config(), "rho": self.rho, "epsilon": self.epsilon}
