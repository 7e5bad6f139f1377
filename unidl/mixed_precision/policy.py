"""Dtype policies: the dtype a layer's variables are stored in and the dtype it computes in.

A policy is named as in Keras 3: ``"mixed_float16"`` and ``"mixed_bfloat16"`` keep variables
in ``float32`` and compute in the low-precision dtype; any plain dtype name (``"float32"``,
``"float16"``, ``"int64"``...) uses that dtype for both.

Example:
    >>> from unidl import mixed_precision
    >>> p = mixed_precision.DTypePolicy("mixed_float16")
    >>> p.name, p.compute_dtype, p.variable_dtype
    ('mixed_float16', 'float16', 'float32')
    >>> mixed_precision.DTypePolicy("float32").is_mixed
    False
"""

from __future__ import annotations

from unidl import dtypes as _dt

__all__ = ["DTypePolicy", "Policy", "set_global_policy", "global_policy", "set_dtype_policy",
           "dtype_policy", "resolve_policy", "MIXED_POLICIES"]

#: the mixed policies: name -> compute dtype (variables are float32)
MIXED_POLICIES = {"mixed_float16": "float16", "mixed_bfloat16": "bfloat16"}


def _accepted() -> str:
    return ", ".join([*MIXED_POLICIES, *_dt.DTYPES])


class DTypePolicy:
    """The dtypes of a layer: ``variable_dtype`` (its weights) and ``compute_dtype`` (its
    inputs, the weights as the layer reads them in ``call``, and its outputs).

    Args:
        name: ``"mixed_float16"``, ``"mixed_bfloat16"`` or a dtype name (``"float32"``,
            ``"float16"``, ``"bfloat16"``, ``"float64"``, integer dtypes); default: the
            global policy's name.

    Raises:
        ValueError: an unknown name (the message lists the accepted ones).

    Example:
        >>> from unidl.mixed_precision import DTypePolicy
        >>> DTypePolicy("mixed_bfloat16")
        <DTypePolicy "mixed_bfloat16">
        >>> DTypePolicy("mixed_float32")
        Traceback (most recent call last):
        ...
        ValueError: unknown dtype policy 'mixed_float32'; accepted: mixed_float16, ...
    """

    __slots__ = ("_name", "_compute", "_variable")

    def __init__(self, name=None):
        if name is None:
            name = global_policy().name
        if isinstance(name, DTypePolicy):
            name = name.name
        if isinstance(name, str) and name in MIXED_POLICIES:
            self._name, self._compute, self._variable = name, MIXED_POLICIES[name], "float32"
            return
        try:
            dtype = _dt.standardize(name)
        except TypeError:
            raise ValueError(f"unknown dtype policy {name!r}; accepted: {_accepted()}") from None
        self._name = self._compute = self._variable = dtype

    @property
    def name(self) -> str:
        return self._name

    @property
    def compute_dtype(self) -> str:
        """The dtype of the layer's computation (inputs, weights as read, outputs)."""
        return self._compute

    @property
    def variable_dtype(self) -> str:
        """The dtype of the layer's weights."""
        return self._variable

    @property
    def is_mixed(self) -> bool:
        """Whether the compute dtype differs from the variable dtype."""
        return self._compute != self._variable

    def get_config(self) -> dict:
        return {"name": self._name}

    @classmethod
    def from_config(cls, config: dict) -> DTypePolicy:
        return cls(config["name"])

    def __eq__(self, other):
        return isinstance(other, DTypePolicy) and other.name == self.name

    def __hash__(self):
        return hash(self._name)

    def __repr__(self) -> str:
        return f'<DTypePolicy "{self._name}">'


#: Keras 2's name of the same class
Policy = DTypePolicy

_GLOBAL: list = [None]  # the global policy (None: float32)
_FLOAT32 = DTypePolicy("float32")


def global_policy() -> DTypePolicy:
    """The policy of layers created without ``dtype`` (default ``float32``).

    Example:
        >>> from unidl import mixed_precision
        >>> mixed_precision.global_policy().name
        'float32'
    """
    policy = _GLOBAL[0]
    return _FLOAT32 if policy is None else policy


def set_global_policy(policy) -> None:
    """Set the policy of layers created from now on without a ``dtype`` argument (layers
    that exist keep theirs).

    Args:
        policy: ``"mixed_float16"``, ``"mixed_bfloat16"``, ``"float32"`` (the default),
            another dtype name, a :class:`DTypePolicy`, or None (back to ``float32``).

    Example:
        >>> from unidl import mixed_precision
        >>> mixed_precision.set_global_policy("mixed_float16")
        >>> mixed_precision.global_policy().compute_dtype
        'float16'
        >>> mixed_precision.set_global_policy("float32")
    """
    if policy is None:
        _GLOBAL[0] = None
        return
    policy = policy if isinstance(policy, DTypePolicy) else DTypePolicy(policy)
    if not _dt.is_float(policy.compute_dtype):
        raise ValueError(f"set_global_policy: the global policy must compute in a float dtype, "
                         f"got {policy.name!r}")
    _GLOBAL[0] = None if policy.name == "float32" else policy


# Keras 3's other names
set_dtype_policy = set_global_policy
dtype_policy = global_policy


def resolve_policy(dtype) -> DTypePolicy:
    """The policy a layer's ``dtype`` argument means: None -> the global policy; a policy
    name, a dtype or a :class:`DTypePolicy` (or its config dict, as saved files hold it)."""
    if dtype is None:
        return global_policy()
    if isinstance(dtype, DTypePolicy):
        return dtype
    if isinstance(dtype, dict) and "config" in dtype:  # a serialized policy
        return DTypePolicy(dtype["config"].get("name"))
    return DTypePolicy(dtype)
