"""PyTorch elementwise kernels.

Inputs arrive converted and promoted; torch's own type promotion never kicks in because
both operands already share a dtype.
"""

from __future__ import annotations

import torch


def floor_divide(x, y):
    return torch.div(x, y, rounding_mode="floor")


def sign(x):
    out = torch.sign(x)
    if x.is_floating_point():  # torch.sign(nan) is 0; unidl (like NumPy) keeps NaN
        out = torch.where(torch.isnan(x), x, out)
    return out


def clip(x, x_min, x_max):
    if x_min is None and x_max is None:
        return x.clone()
    shapes = [t.shape for t in (x_min, x_max) if t is not None and t.shape != x.shape]
    if shapes:
        # clamp broadcasts forward, but its backward fails when the bounds widen x's shape
        shape = torch.broadcast_shapes(x.shape, *shapes)
        if shape != x.shape:
            x = x.expand(shape)
    return torch.clamp(x, x_min, x_max)  # min(max(x, x_min), x_max)


def where(condition, x, y):
    if condition.dtype != torch.bool:
        condition = condition != 0
    return torch.where(condition, x, y)


KERNELS = {
    "add": torch.add,
    "subtract": torch.sub,
    "multiply": torch.mul,
    "divide": torch.div,
    "floor_divide": floor_divide,
    "mod": torch.remainder,
    "negative": torch.neg,
    "power": torch.pow,
    "exp": torch.exp,
    "log": torch.log,
    "log1p": torch.log1p,
    "expm1": torch.expm1,
    "sqrt": torch.sqrt,
    "rsqrt": torch.rsqrt,
    "square": torch.square,
    "reciprocal": torch.reciprocal,
    "abs": torch.abs,
    "sign": sign,
    "floor": torch.floor,
    "ceil": torch.ceil,
    "round": torch.round,
    "maximum": torch.maximum,
    "minimum": torch.minimum,
    "clip": clip,
    "where": where,
    "sin": torch.sin,
    "cos": torch.cos,
    "tan": torch.tan,
    "tanh": torch.tanh,
    "arctan": torch.atan,
    "erf": torch.erf,
    "equal": torch.eq,
    "not_equal": torch.ne,
    "less": torch.lt,
    "less_equal": torch.le,
    "greater": torch.gt,
    "greater_equal": torch.ge,
    "logical_and": torch.logical_and,
    "logical_or": torch.logical_or,
    "logical_not": torch.logical_not,
    "isnan": torch.isnan,
    "isinf": torch.isinf,
    "isfinite": torch.isfinite,
}
