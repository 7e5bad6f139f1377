"""PyTorch image kernels: ``resize`` through ``F.interpolate`` and ``affine_transform``
through ``F.grid_sample``, both giving the spec's (TensorFlow's) results within tolerance.

``resize``: ``"bilinear"`` with ``align_corners=False`` and no antialiasing has TensorFlow's
half-pixel centres and edge clamping; ``"nearest-exact"`` picks ``floor((o + 0.5) *
scale)`` as TensorFlow (``"nearest"`` would not: it drops the half pixel). Half-precision
images are resized in float32. Empty batches, and bilinear float64 images (PyTorch then
computes the source positions in float64, not in float32 as the spec), use the composite.

``affine_transform``:
The input coordinates follow the spec's rules (TensorFlow's ``ImageProjectiveTransformV3``:
the fill modes map them first, see ``unidl/spec/image.py``); ``grid_sample`` then reads the
pixels with ``align_corners=True`` (pixel ``i`` at ``2 i / (n - 1) - 1``) and zero padding.
Sampling ``images - fill_value`` and adding ``fill_value`` back makes every pixel outside the
image read ``fill_value`` (the interpolation weights sum to one). ``"nearest"`` rounds the
coordinates itself, ties away from zero (``grid_sample`` rounds ties to even), and asks
``grid_sample`` for the integer pixels. The spec's composite runs instead for images one
pixel high or wide (``align_corners`` cannot address them), for empty batches, and where
PyTorch's deterministic mode is on for a CUDA tensor that needs a gradient
(``grid_sample``'s CUDA backward has no deterministic implementation).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from unidl.spec.image import (
    _affine_impl,
    _resize_impl,
    check_fill_mode,
    check_interpolation,
    resize_shape,
)

_HALF = (torch.float16, torch.bfloat16)


def resize(images, size, interpolation="bilinear"):
    interpolation = check_interpolation(interpolation)
    _, height, width, _ = resize_shape(tuple(images.shape), size, interpolation)
    if not images.is_floating_point():
        images = images.to(torch.float32)
    if images.shape[0] == 0 or (images.dtype == torch.float64 and
                                interpolation == "bilinear"):
        return _resize_impl(images, size, interpolation)
    x = images.to(torch.float32) if images.dtype in _HALF else images
    x = x.permute(0, 3, 1, 2)
    if interpolation == "nearest":
        y = F.interpolate(x, size=(height, width), mode="nearest-exact")
    else:
        y = F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False,
                          antialias=False)
    return y.permute(0, 2, 3, 1).to(images.dtype)


def _fit(c, n: int, fill_mode: str):
    """Coordinates ``c`` on an axis of ``n`` pixels after ``fill_mode`` (the spec's rules)."""
    last = float(n - 1)
    if fill_mode == "constant":
        return c
    if fill_mode == "nearest":
        return c.clamp(0.0, last)
    if fill_mode == "reflect":
        period = 2.0 * n
        t = torch.floor(-c / period) * period + c
        below = torch.where(t < -n, t + period, -t - 1.0)
        u = c - torch.floor(c / period) * period
        above = torch.where(u >= n, period - 1.0 - u, u)
    else:  # wrap
        below = c + (torch.floor(-c / last) + 1.0) * n
        above = c - torch.floor(c / last) * n
    return torch.where(c < 0, below, torch.where(c > last, above, c)).clamp(0.0, last)


def _round_half_away(c):
    return torch.sign(c) * torch.floor(c.abs() + 0.5)


def _use_composite(images) -> bool:
    b, h, w, _ = images.shape
    if b == 0 or h < 2 or w < 2:
        return True
    return (torch.are_deterministic_algorithms_enabled() and images.is_cuda
            and images.requires_grad)


def affine_transform(images, transforms, interpolation="bilinear", fill_mode="constant",
                     fill_value=0.0):
    interpolation = check_interpolation(interpolation)
    fill_mode = check_fill_mode(fill_mode)
    if not images.is_floating_point():
        images = images.to(torch.float32)
    if _use_composite(images):
        return _affine_impl(images, transforms, interpolation, fill_mode, fill_value)
    b, h, w, _ = images.shape
    dtype = images.dtype
    cd = torch.float64 if dtype == torch.float64 else torch.float32
    t = transforms.detach().to(device=images.device, dtype=cd)
    t = t.expand(b, 8) if t.shape[0] == 1 else t
    a0, a1, a2, b0, b1, b2, c0, c1 = (p.reshape(-1, 1, 1) for p in t.unbind(1))
    xs = torch.arange(w, dtype=cd, device=images.device).reshape(1, 1, w)
    ys = torch.arange(h, dtype=cd, device=images.device).reshape(1, h, 1)
    k = c0 * xs + c1 * ys + 1.0
    finite = k != 0
    k = torch.where(finite, k, torch.ones_like(k))
    px = _fit((a0 * xs + a1 * ys + a2) / k, w, fill_mode)
    py = _fit((b0 * xs + b1 * ys + b2) / k, h, fill_mode)
    mode = "bilinear"
    if interpolation == "nearest":
        px, py, mode = _round_half_away(px), _round_half_away(py), "nearest"
    grid = torch.stack([px * (2.0 / (w - 1)) - 1.0, py * (2.0 / (h - 1)) - 1.0], dim=-1)
    fill = float(fill_value)
    x = images.to(cd) - fill
    out = F.grid_sample(x.permute(0, 3, 1, 2), grid, mode=mode, padding_mode="zeros",
                        align_corners=True).permute(0, 2, 3, 1) + fill
    out = torch.where(finite.unsqueeze(-1), out, torch.full_like(out, fill))
    return out.to(dtype)


KERNELS = {
    "resize": resize,
    "affine_transform": affine_transform,
}
