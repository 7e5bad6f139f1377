"""JAX linalg kernels.

Precision follows JAX's ``default_matmul_precision`` (the backend's ``strict_numerics`` sets
it to ``"highest"`` for the conformance suite). ``dot`` and ``dense`` are composites of the
spec, given native kernels here.
"""

from __future__ import annotations

import jax.numpy as jnp

from unidl.spec.linalg import einsum_expression, tensordot_axes


def einsum(subscripts, operands):
    """``jnp.einsum`` on the spec's explicit expression (ellipses and size-1 broadcasting
    rewritten into letters of their own)."""
    expr = einsum_expression(subscripts, tuple(tuple(a.shape) for a in operands))
    return jnp.einsum(expr, *operands)


def tensordot(x, y, axes=2):
    ax, ay = tensordot_axes(axes, x.ndim, y.ndim)
    return jnp.tensordot(x, y, axes=(list(ax), list(ay)))


def dense(x, kernel, bias=None):
    y = jnp.matmul(x, kernel)
    return y if bias is None else y + bias


KERNELS = {
    "matmul": jnp.matmul,
    "dense": dense,
    "dot": jnp.dot,
    "einsum": einsum,
    "tensordot": tensordot,
}
