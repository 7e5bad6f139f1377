"""NumPy linalg kernels."""

import numpy as np

from unidl.spec.linalg import einsum_expression, tensordot_axes

_PLANS: dict = {}  # (subscripts, shapes) -> explicit expression, or the axes of a transpose


def _plan(subscripts, shapes):
    key = (subscripts, shapes)
    plan = _PLANS.get(key)
    if plan is None:
        plan = einsum_expression(subscripts, shapes)
        lhs, out = plan.split("->")
        if "," not in lhs and sorted(lhs) == sorted(out) and len(set(lhs)) == len(lhs):
            plan = tuple(lhs.index(c) for c in out)  # a pure transpose (a view)
        if len(_PLANS) < 4096:
            _PLANS[key] = plan
    return plan


def einsum(subscripts, operands):
    plan = _plan(subscripts, tuple(a.shape for a in operands))
    if plan.__class__ is tuple:
        return np.transpose(operands[0], plan)
    if len(operands) > 1:
        # optimize=True contracts pairwise with BLAS (tensordot) where it can
        return np.einsum(plan, *operands, optimize=True)
    return np.einsum(plan, *operands)


def tensordot(x, y, axes=2):
    ax, ay = tensordot_axes(axes, x.ndim, y.ndim)
    return np.tensordot(x, y, axes=(list(ax), list(ay)))


def dense(x, kernel, bias=None):
    y = np.matmul(x, kernel)
    if bias is not None:
        np.add(y, bias, out=y)  # (y is new, of the promoted dtype: added in place)
    return y


KERNELS = {
    "matmul": np.matmul,
    "dense": dense,
    "dot": np.dot,
    "einsum": einsum,
    "tensordot": tensordot,
}
