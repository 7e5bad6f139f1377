"""Comparing a backend's result with the float64 reference under a tolerance."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Comparison", "compare"]


@dataclass
class Comparison:
    ok: bool
    max_abs: float = 0.0
    max_rel: float = 0.0
    ratio: float = 0.0  # worst |a - e| / (atol + rtol |e|); <= 1 passes
    message: str = ""


def _as_float64(a):
    a = np.asarray(a)
    if a.dtype.name == "bfloat16" or a.dtype.kind == "V":
        return a.astype(np.float32).astype(np.float64)
    if a.dtype.kind in "fiub":
        return a.astype(np.float64)
    return a


def _plain(v):
    """A NumPy scalar as the Python number it holds (``nan``, not ``np.float64(nan)``)."""
    return v.item() if isinstance(v, np.generic) else v


def compare(actual, expected, rtol: float, atol: float, nan_ok: bool = True) -> Comparison:
    """Compare arrays elementwise: ``|a - e| <= atol + rtol * |e|``, NaNs and infs must match.

    Shapes must be equal (no broadcasting).
    """
    a = _as_float64(actual)
    e = _as_float64(expected)
    if a.shape != e.shape:
        return Comparison(False, np.inf, np.inf, np.inf, f"shape {a.shape} != expected {e.shape}")
    if a.size == 0:
        return Comparison(True)
    a_nan, e_nan = np.isnan(a), np.isnan(e)
    if nan_ok:
        bad_nan = a_nan != e_nan
    else:
        bad_nan = a_nan | e_nan
    a_inf, e_inf = np.isinf(a), np.isinf(e)
    bad_inf = (a_inf | e_inf) & ~(a_nan | e_nan) & (a != e)
    finite = ~(a_nan | e_nan | a_inf | e_inf)
    with np.errstate(all="ignore"):
        diff = np.abs(np.where(finite, a, 0.0) - np.where(finite, e, 0.0))
    allowed = atol + rtol * np.abs(np.where(finite, e, 0.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio_arr = np.where(finite, diff / np.where(allowed > 0, allowed, 1e-300), 0.0)
        rel = np.where(finite & (e != 0), diff / np.abs(np.where(e != 0, e, 1.0)), 0.0)
    ratio = float(ratio_arr.max()) if ratio_arr.size else 0.0
    n_bad_special = int(bad_nan.sum() + bad_inf.sum())
    if n_bad_special:
        ratio = np.inf
    ok = ratio <= 1.0
    msg = ""
    if not ok:
        if n_bad_special:
            idx = np.argwhere(bad_nan | bad_inf)[0]
        else:
            idx = np.unravel_index(int(np.argmax(ratio_arr)), a.shape)
        idx = tuple(int(i) for i in idx)
        msg = (f"mismatch at {idx}: got {_plain(a[idx])!r}, expected {_plain(e[idx])!r} "
               f"(rtol={rtol}, atol={atol})")
    return Comparison(ok, float(diff.max()), float(rel.max()), ratio, msg)
