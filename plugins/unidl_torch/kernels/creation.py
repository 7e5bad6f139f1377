"""PyTorch creation kernels (``dtype`` arrives resolved to a unidl dtype name).

New tensors are made on :func:`unidl_torch.backend.current_torch_device`; ``*_like`` ops
follow ``x``'s device.
"""

from __future__ import annotations

import torch

from unidl import dtypes as _dt
from unidl_torch.backend import DTYPES, current_torch_device


def _shape(shape):
    if isinstance(shape, int):
        return (shape,)
    return tuple(int(d) for d in shape)


def zeros(shape, dtype):
    return torch.zeros(_shape(shape), dtype=DTYPES[dtype], device=current_torch_device())


def ones(shape, dtype):
    return torch.ones(_shape(shape), dtype=DTYPES[dtype], device=current_torch_device())


def _fill(shape, fill_value, dtype, device):
    td = DTYPES[dtype]
    if isinstance(fill_value, torch.Tensor):
        return fill_value.to(device=device, dtype=td).expand(shape).clone()
    if _dt.is_int(dtype) and isinstance(fill_value, float):
        fill_value = int(fill_value)  # truncate toward zero, as a cast does
    return torch.full(shape, fill_value, dtype=td, device=device)


def full(shape, fill_value, dtype):
    return _fill(_shape(shape), fill_value, dtype, current_torch_device())


def zeros_like(x, dtype):
    return torch.zeros_like(x, dtype=DTYPES[dtype])


def ones_like(x, dtype):
    return torch.ones_like(x, dtype=DTYPES[dtype])


def full_like(x, fill_value, dtype):
    return _fill(tuple(x.shape), fill_value, dtype, x.device)


def arange(start, stop, step, dtype):
    if stop is None:
        start, stop = 0, start
    ints = all(isinstance(v, int) for v in (start, stop, step))
    wide = torch.int64 if ints else torch.float64
    td = DTYPES[dtype]
    if step != 0 and (stop - start) * step <= 0:  # torch rejects an empty range that runs backwards
        return torch.zeros((0,), dtype=td, device=current_torch_device())
    if td == wide or (ints and td in (torch.int32, torch.int64)):
        return torch.arange(start, stop, step, dtype=td, device=current_torch_device())
    return torch.arange(start, stop, step, dtype=wide, device=current_torch_device()).to(td)


def linspace(start, stop, num, endpoint, dtype):
    num = int(num)
    dev = current_torch_device()
    div = num - 1 if endpoint else num
    y = torch.arange(num, dtype=torch.float64, device=dev)
    delta = float(stop) - float(start)
    if div > 0:
        step = delta / div
        y = y * step if step != 0 else y / div * delta
    else:
        y = y * delta
    y = y + float(start)
    if endpoint and num > 1:
        y[-1] = float(stop)
    if _dt.is_int(dtype):
        y = torch.floor(y)
    return y.to(DTYPES[dtype])


def eye(n, m, k, dtype):
    n = int(n)
    m = n if m is None else int(m)
    k = int(k)
    dev = current_torch_device()
    td = DTYPES[dtype]
    if k == 0:
        return torch.eye(n, m, dtype=td, device=dev)
    rows = torch.arange(n, device=dev)[:, None]
    cols = torch.arange(m, device=dev)[None, :]
    return (cols - rows == k).to(td)


def cast(x, dtype):
    return x.to(DTYPES[dtype])


KERNELS = {
    "zeros": zeros, "ones": ones, "full": full,
    "zeros_like": zeros_like, "ones_like": ones_like, "full_like": full_like,
    "arange": arange, "linspace": linspace, "eye": eye,
    "cast": cast, "stop_gradient": torch.Tensor.detach,
}
