"""PyTorch nn kernels: ``torch.nn.functional`` where it matches the spec."""

import torch
import torch.nn.functional as F

from unidl.spec.nn import check_rate, dropout_mask, norm_axes, param_broadcast_shape

_HALF = (torch.float16, torch.bfloat16)


def leaky_relu(x, negative_slope=0.2):
    return F.leaky_relu(x, float(negative_slope))


def elu(x, alpha=1.0):
    return F.elu(x, float(alpha))


def gelu(x, approximate=True):
    return F.gelu(x, approximate="tanh" if approximate else "none")


def softmax(x, axis=-1):
    return torch.softmax(x, axis)


def log_softmax(x, axis=-1):
    return torch.log_softmax(x, axis)


def _param(p, x, axes):
    if p is None:
        return None
    shp = param_broadcast_shape(tuple(p.shape), tuple(x.shape), axes)
    p = p if shp is None else p.reshape(shp)
    return p.float() if p.dtype in _HALF else p


def batch_norm(x, mean, variance, offset=None, scale=None, epsilon=1e-3, axis=-1):
    axes = (axis % max(x.dim(), 1),)
    xf = x.float() if x.dtype in _HALF else x
    inv = torch.rsqrt(_param(variance, x, axes) + epsilon)
    if scale is not None:
        inv = inv * _param(scale, x, axes)
    xc = xf - _param(mean, x, axes)
    y = torch.addcmul(_param(offset, x, axes), xc, inv) if offset is not None else xc * inv
    return y.to(x.dtype)


def layer_norm(x, gamma=None, beta=None, axis=-1, epsilon=1e-3):
    nd = x.dim()
    axes = norm_axes(axis, nd)
    k = len(axes)
    trailing = axes == tuple(range(nd - k, nd))
    shape = tuple(x.shape[nd - k:])
    if trailing and all(p is None or tuple(p.shape) == shape for p in (gamma, beta)):
        return F.layer_norm(x, shape, gamma, beta, float(epsilon))
    xf = x.float() if x.dtype in _HALF else x
    var, mean = torch.var_mean(xf, dim=axes, correction=0, keepdim=True)
    y = (xf - mean) * torch.rsqrt(var + epsilon)
    if gamma is not None:
        y = y * _param(gamma, x, axes)
    if beta is not None:
        y = y + _param(beta, x, axes)
    return y.to(x.dtype)


def dropout(x, rate, seed=None, training=True):
    rate = check_rate(rate)
    if not training or rate == 0.0:
        return x
    if seed is None:
        return F.dropout(x, rate, training=True)
    mask = torch.from_numpy(dropout_mask(tuple(x.shape), rate, seed)).to(x.device)
    scale = torch.tensor(1.0 / (1.0 - rate), dtype=x.dtype, device=x.device)
    return torch.where(mask, x * scale, torch.zeros((), dtype=x.dtype, device=x.device))


KERNELS = {
    "relu": torch.relu,
    "relu6": F.relu6,
    "leaky_relu": leaky_relu,
    "elu": elu,
    "selu": torch.selu,
    "gelu": gelu,
    "sigmoid": torch.sigmoid,
    "hard_sigmoid": F.hardsigmoid,
    "softplus": F.softplus,
    "silu": F.silu,
    "softmax": softmax,
    "log_softmax": log_softmax,
    "batch_norm": batch_norm,
    "layer_norm": layer_norm,
    "dropout": dropout,
}
