"""Activation functions by name (Keras 3 names and defaults), computed with :mod:`unidl.ops`.

``get(identifier)`` resolves a name, ``None`` (linear) or a callable (returned as is). The
functions use the fused ops of the spec where they exist, so they run on every backend and
inside compiled functions.

Keras 3 defaults worth knowing: ``gelu`` is the exact (erf) form, ``leaky_relu`` has slope 0.2,
``hard_sigmoid(x) = relu6(x + 3) / 6``, ``swish`` is ``silu``.

Example:
    >>> import unidl
    >>> from unidl import activations, ops
    >>> with unidl.use_backend("numpy"):
    ...     f = activations.get("relu")
    ...     ops.to_numpy(f(ops.convert_to_tensor([-1.0, 2.0]))).tolist()
    [0.0, 2.0]
"""

from __future__ import annotations

from unidl import ops

__all__ = [
    "relu",
    "relu6",
    "leaky_relu",
    "elu",
    "selu",
    "gelu",
    "sigmoid",
    "hard_sigmoid",
    "softplus",
    "softsign",
    "silu",
    "swish",
    "hard_silu",
    "hard_swish",
    "mish",
    "softmax",
    "log_softmax",
    "tanh",
    "exponential",
    "linear",
    "get",
    "serialize",
    "deserialize",
]


def relu(x, negative_slope=0.0, max_value=None, threshold=0.0):
    """``max(x, 0)``; with Keras's options: a slope below ``threshold``, a ceiling
    ``max_value``, and values below ``threshold`` zeroed (or sloped)."""
    if negative_slope == 0.0 and max_value is None and threshold == 0.0:
        return ops.relu(x)
    if max_value is None and threshold == 0.0:
        return ops.leaky_relu(x, float(negative_slope))
    if negative_slope == 0.0 and max_value == 6.0 and threshold == 0.0:
        return ops.relu6(x)
    if threshold != 0.0:
        out = ops.where(ops.greater(x, threshold), x, 0.0)
    else:
        out = ops.relu(x)
    if max_value is not None:
        out = ops.clip(out, 0.0, float(max_value))
    if negative_slope != 0.0:
        neg = ops.where(ops.less(x, threshold), ops.subtract(x, float(threshold)), 0.0)
        out = ops.add(out, ops.multiply(neg, float(negative_slope)))
    return out


def relu6(x):
    """``min(max(x, 0), 6)``."""
    return ops.relu6(x)


def leaky_relu(x, negative_slope=0.2):
    """``x`` where positive, ``negative_slope * x`` elsewhere."""
    return ops.leaky_relu(x, float(negative_slope))


def elu(x, alpha=1.0):
    """``x`` where positive, ``alpha * (exp(x) - 1)`` elsewhere."""
    return ops.elu(x, float(alpha))


def selu(x):
    """Scaled ELU (self-normalizing constants)."""
    return ops.selu(x)


def gelu(x, approximate=False):
    """Gaussian error linear unit; exact (erf) by default as ``keras.activations.gelu``."""
    return ops.gelu(x, bool(approximate))


def sigmoid(x):
    """``1 / (1 + exp(-x))``."""
    return ops.sigmoid(x)


def hard_sigmoid(x):
    """``relu6(x + 3) / 6``."""
    return ops.hard_sigmoid(x)


def softplus(x):
    """``log(1 + exp(x))``, computed stably."""
    return ops.softplus(x)


def softsign(x):
    """``x / (1 + |x|)``."""
    return ops.divide(x, ops.add(ops.abs(x), 1.0))


def silu(x):
    """``x * sigmoid(x)`` (also called swish)."""
    return ops.silu(x)


swish = silu


def hard_silu(x):
    """``x * hard_sigmoid(x)`` (also called hard swish)."""
    return ops.multiply(x, ops.hard_sigmoid(x))


hard_swish = hard_silu


def mish(x):
    """``x * tanh(softplus(x))``."""
    return ops.multiply(x, ops.tanh(ops.softplus(x)))


def softmax(x, axis=-1):
    """Softmax along ``axis`` (the cross-entropy losses then use ``x``, the logits: see
    :mod:`unidl.logits`)."""
    from unidl.logits import remember_softmax

    y = ops.softmax(x, axis)
    remember_softmax(y, x, axis)
    return y


def log_softmax(x, axis=-1):
    """Log-softmax along ``axis``."""
    return ops.log_softmax(x, axis)


def tanh(x):
    """Hyperbolic tangent."""
    return ops.tanh(x)


def exponential(x):
    """``exp(x)``."""
    return ops.exp(x)


def linear(x):
    """The identity."""
    return x


_FUNCTIONS = {f.__name__: f for f in (
    relu, relu6, leaky_relu, elu, selu, gelu, sigmoid, hard_sigmoid, softplus, softsign, silu,
    hard_silu, mish, softmax, log_softmax, tanh, exponential, linear)}
_FUNCTIONS.update({"swish": silu, "hard_swish": hard_silu})
_NAMES = {id(f): name for name, f in _FUNCTIONS.items() if name not in ("swish", "hard_swish")}


def _unknown(name) -> str:
    return f"unknown activation {name!r}; known names: {', '.join(sorted(_FUNCTIONS))}"


def serialize(activation) -> str | None:
    """The name of a built-in activation (``None`` for linear / None)."""
    if activation is None:
        return "linear"
    name = _NAMES.get(id(activation))
    if name is None:
        raise ValueError(f"cannot serialize {activation!r}: not a built-in activation")
    return name


def deserialize(name):
    return get(name)


def get(identifier):
    """The activation function for a name (``"relu"``, ``"swish"``...), ``None`` (linear), a
    ``{"class_name": name}`` dict or a callable (returned as is)."""
    if identifier is None:
        return linear
    if isinstance(identifier, dict):
        identifier = identifier.get("class_name", identifier.get("config"))
    if isinstance(identifier, str):
        fn = _FUNCTIONS.get(identifier) or _FUNCTIONS.get(identifier.lower())
        if fn is None:
            raise ValueError(_unknown(identifier))
        return fn
    if callable(identifier):
        return identifier
    raise ValueError(f"cannot interpret {identifier!r} as an activation: expected a name, None "
                     "or a callable")
