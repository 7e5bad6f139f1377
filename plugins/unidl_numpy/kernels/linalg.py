"""NumPy linalg kernels."""

import numpy as np

from unidl.spec.linalg import einsum_expand, tensordot_axes


def einsum(subscripts, operands):
    terms, out, _ = einsum_expand(subscripts, tuple(a.shape for a in operands))
    expr = ",".join(terms) + "->" + out
    if len(operands) > 1:
        # optimize=True contracts pairwise with BLAS (tensordot) where it can
        return np.einsum(expr, *operands, optimize=True)
    return np.einsum(expr, *operands)


def tensordot(x, y, axes=2):
    ax, ay = tensordot_axes(axes, x.ndim, y.ndim)
    return np.tensordot(x, y, axes=(list(ax), list(ay)))


KERNELS = {
    "matmul": np.matmul,
    "dot": np.dot,
    "einsum": einsum,
    "tensordot": tensordot,
}
