"""PyTorch linalg kernels."""

import torch

from unidl.spec.linalg import einsum_expression, tensordot_axes


def matmul(x, y):
    if x.is_cuda and not x.is_floating_point():
        # CUDA has no integer GEMM ("addmm_cuda not implemented for 'Int'"): compute on the
        # host, exactly, and move back (integer matmul is rare and small)
        return torch.matmul(x.cpu(), y.cpu()).to(x.device)
    return torch.matmul(x, y)


def dot(x, y):
    nx, ny = x.dim(), y.dim()
    if nx == 0 or ny == 0:
        return torch.mul(x, y)
    if nx <= 2 and ny <= 2:
        return matmul(x, y)  # np.dot and matmul agree up to 2-D
    if ny == 1:
        return tensordot(x, y, ([nx - 1], [0]))
    return tensordot(x, y, ([nx - 1], [ny - 2]))


def einsum(subscripts, operands):
    expr = einsum_expression(subscripts, tuple(tuple(_size(d) for d in a.shape)
                                               for a in operands))
    return torch.einsum(expr, *operands)


def _size(d):
    """A dimension for the einsum plan: a symbolic one (``torch.export``'s dynamic batch, a
    ``SymInt`` that cannot be hashed) as -1, which the plan treats as "not a broadcast 1"."""
    return d if type(d) is int else -1


def tensordot(x, y, axes=2):
    ax, ay = tensordot_axes(axes, x.dim(), y.dim())
    if x.is_cuda and not x.is_floating_point():  # no integer GEMM on CUDA, as in matmul
        return torch.tensordot(x.cpu(), y.cpu(), dims=(list(ax), list(ay))).to(x.device)
    return torch.tensordot(x, y, dims=(list(ax), list(ay)))


def dense(x, kernel, bias=None):
    """One fused GEMM with the bias (``addmm``; ``F.linear`` for other ranks)."""
    if x.dim() == 2 and bias is not None:
        return torch.addmm(bias, x, kernel)
    return torch.nn.functional.linear(x, kernel.t(), bias)


KERNELS = {
    "matmul": matmul,
    "dense": dense,
    "dot": dot,
    "einsum": einsum,
    "tensordot": tensordot,
}
