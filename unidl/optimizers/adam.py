"""Adam and its relatives: Adam, AdamW, Adamax, Nadam (update rules as ``torch.optim``)."""

from __future__ import annotations

from unidl.optimizers.base import Optimizer, _check_positive, _ops
from unidl.variables import Variable

__all__ = ["Adam", "AdamW", "Adamax", "Nadam"]


def _check_beta(cls, name, value):
    value = float(value)
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{cls}: {name} must be in [0, 1), got {value}")
    return value


class _AdamBase(Optimizer):
    _uses_step = True

    def __init__(self, learning_rate, beta_1, beta_2, epsilon, weight_decay, clipnorm, clipvalue,
                 global_clipnorm, name):
        super().__init__(learning_rate, weight_decay=weight_decay, clipnorm=clipnorm,
                         clipvalue=clipvalue, global_clipnorm=global_clipnorm, name=name)
        cls = type(self).__name__
        self.beta_1 = _check_beta(cls, "beta_1", beta_1)
        self.beta_2 = _check_beta(cls, "beta_2", beta_2)
        self.epsilon = _check_positive(cls, "epsilon", epsilon, allow_zero=True)

    def _constants(self):
        b1, b2 = self.beta_1, self.beta_2
        return {"b1": b1, "b2": b2, "one_b1": 1.0 - b1, "one_b2": 1.0 - b2, "eps": self.epsilon}

    def _moments(self, m_var, v_var, g, c):
        """The new first and second moments (assigned), as torch: ``m = b1 m + (1 - b1) g``,
        ``v = b2 v + (1 - b2) g**2``."""
        ops = _ops()
        m = ops.add(ops.multiply(m_var.value, c.b1), ops.multiply(g, c.one_b1))
        v = ops.add(ops.multiply(v_var.value, c.b2), ops.multiply(ops.square(g), c.one_b2))
        m_var._assign_native(m)
        v_var._assign_native(v)
        return m, v

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2,
                "epsilon": self.epsilon}


class Adam(_AdamBase):
    """Adam (Kingma & Ba), exactly as ``torch.optim.Adam``.

    Update at step ``t`` (1 on the first step)::

        g = g + weight_decay * p                 # coupled L2, if weight_decay (as torch)
        m = beta_1 * m + (1 - beta_1) * g
        v = beta_2 * v + (1 - beta_2) * g**2
        v_max = max(v_max, v)                     # only with amsgrad; then v_max replaces v
        denom = sqrt(v) / sqrt(1 - beta_2**t) + epsilon
        p = p - lr / (1 - beta_1**t) * m / denom

    ``epsilon`` is added to ``sqrt(v_hat)`` as in torch (Keras adds it to ``sqrt(v)`` before
    the bias correction; the two differ only when ``v`` is tiny). Defaults are Keras'.
    """

    fused_kernel_name = "adam"

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 amsgrad=False, weight_decay=None, clipnorm=None, clipvalue=None,
                 global_clipnorm=None, name=None):
        super().__init__(learning_rate, beta_1, beta_2, epsilon, weight_decay, clipnorm,
                         clipvalue, global_clipnorm, name)
        self.amsgrad = bool(amsgrad)
        names = (("m", 0.0), ("v", 0.0))
        self._slot_names = names + ((("v_max", 0.0),) if self.amsgrad else ())

    def _step_scalars(self, lr, t):
        ops = _ops()
        bc1 = ops.subtract(1.0, ops.power(self.beta_1, t))
        sqrt_bc2 = ops.sqrt(ops.subtract(1.0, ops.power(self.beta_2, t)))
        decay = None
        if not self._coupled_decay and self.weight_decay:
            decay = ops.subtract(1.0, ops.multiply(lr, self.weight_decay))
        return (ops.divide(lr, bc1), sqrt_bc2, decay)

    def _update(self, var, p, g, slots, s, c, decay):
        ops = _ops()
        step_size, sqrt_bc2, factor = s
        m, v = self._moments(slots[0], slots[1], g, c)
        if self.amsgrad:
            v = ops.maximum(slots[2].value, v)
            slots[2]._assign_native(v)
        denom = ops.add(ops.divide(ops.sqrt(v), sqrt_bc2), c.eps)
        if decay:
            p = ops.multiply(p, factor)
        var._assign_native(ops.subtract(p, ops.divide(ops.multiply(m, step_size), denom)))

    def get_config(self):
        return {**super().get_config(), "amsgrad": self.amsgrad}


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter), as ``torch.optim.AdamW``.

    Each step first shrinks the variable, ``p = p * (1 - lr * weight_decay)``, then applies the
    :class:`Adam` update (without L2 in the gradient). ``weight_decay`` defaults to 0.004
    (Keras; torch's default is 0.01).
    """

    _coupled_decay = False

    def __init__(self, learning_rate=0.001, weight_decay=0.004, beta_1=0.9, beta_2=0.999,
                 epsilon=1e-7, amsgrad=False, clipnorm=None, clipvalue=None,
                 global_clipnorm=None, name=None):
        if weight_decay is None:
            raise ValueError("AdamW: weight_decay must be a float, got None")
        super().__init__(learning_rate, beta_1, beta_2, epsilon, amsgrad, weight_decay,
                         clipnorm, clipvalue, global_clipnorm, name)


class Adamax(_AdamBase):
    """Adamax (Adam with the infinity norm), as ``torch.optim.Adamax``.

    Update at step ``t``::

        g = g + weight_decay * p                 # coupled L2, if weight_decay
        m = beta_1 * m + (1 - beta_1) * g
        u = max(beta_2 * u, |g| + epsilon)
        p = p - lr / (1 - beta_1**t) * m / u

    (torch adds ``epsilon`` inside the max; Keras adds it to ``u`` in the division.)
    """

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 weight_decay=None, clipnorm=None, clipvalue=None, global_clipnorm=None,
                 name=None):
        super().__init__(learning_rate, beta_1, beta_2, epsilon, weight_decay, clipnorm,
                         clipvalue, global_clipnorm, name)
        self._slot_names = (("m", 0.0), ("u", 0.0))

    def _step_scalars(self, lr, t):
        ops = _ops()
        return (ops.divide(lr, ops.subtract(1.0, ops.power(self.beta_1, t))),)

    def _update(self, var, p, g, slots, s, c, decay):
        ops = _ops()
        m_var, u_var = slots
        m = ops.add(ops.multiply(m_var.value, c.b1), ops.multiply(g, c.one_b1))
        u = ops.maximum(ops.multiply(u_var.value, c.b2), ops.add(ops.abs(g), c.eps))
        m_var._assign_native(m)
        u_var._assign_native(u)
        var._assign_native(ops.subtract(p, ops.divide(ops.multiply(m, s[0]), u)))


class Nadam(_AdamBase):
    """Adam with Nesterov momentum (Dozat), as ``torch.optim.NAdam``.

    With ``mu_t = beta_1 * (1 - 0.5 * 0.96 ** (t * momentum_decay))`` and
    ``P_t = mu_1 * ... * mu_t`` (kept in a state Variable), step ``t`` does::

        g = g + weight_decay * p                 # coupled L2, if weight_decay
        m = beta_1 * m + (1 - beta_1) * g
        v = beta_2 * v + (1 - beta_2) * g**2
        denom = sqrt(v / (1 - beta_2**t)) + epsilon
        p = p - lr * (1 - mu_t) / (1 - P_t) * g / denom
              - lr * mu_{t+1} / (1 - P_t * mu_{t+1}) * m / denom

    ``momentum_decay`` (torch's name, default 0.004) sets the momentum schedule.
    """

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 weight_decay=None, clipnorm=None, clipvalue=None, global_clipnorm=None,
                 name=None, momentum_decay=0.004):
        super().__init__(learning_rate, beta_1, beta_2, epsilon, weight_decay, clipnorm,
                         clipvalue, global_clipnorm, name)
        self.momentum_decay = _check_positive("Nadam", "momentum_decay", momentum_decay,
                                              allow_zero=True)
        self._slot_names = (("m", 0.0), ("v", 0.0))

    def _make_scalar_vars(self, sdt):
        self._mu_product = Variable(1.0, trainable=False, name=f"{self.name}/mu_product",
                                    dtype=sdt)
        return [self._mu_product]

    def _step_scalars(self, lr, t):
        ops = _ops()
        b1, psi = self.beta_1, self.momentum_decay
        mu = ops.multiply(ops.subtract(1.0, ops.multiply(
            ops.power(0.96, ops.multiply(t, psi)), 0.5)), b1)
        mu_next = ops.multiply(ops.subtract(1.0, ops.multiply(
            ops.power(0.96, ops.multiply(ops.add(t, 1.0), psi)), 0.5)), b1)
        prod = ops.multiply(self._mu_product.value, mu)
        self._mu_product._assign_native(prod)
        c1 = ops.divide(ops.multiply(lr, ops.subtract(1.0, mu)), ops.subtract(1.0, prod))
        c2 = ops.divide(ops.multiply(lr, mu_next),
                        ops.subtract(1.0, ops.multiply(prod, mu_next)))
        bc2 = ops.subtract(1.0, ops.power(self.beta_2, t))
        return (c1, c2, bc2)

    def _update(self, var, p, g, slots, s, c, decay):
        ops = _ops()
        c1, c2, bc2 = s
        m, v = self._moments(slots[0], slots[1], g, c)
        denom = ops.add(ops.sqrt(ops.divide(v, bc2)), c.eps)
        step = ops.add(ops.multiply(g, c1), ops.multiply(m, c2))
        var._assign_native(ops.subtract(p, ops.divide(step, denom)))

    def get_config(self):
        return {**super().get_config(), "momentum_decay": self.momentum_decay}
