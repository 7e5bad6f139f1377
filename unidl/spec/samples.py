"""Sample-input generators for op specs (the conformance suite's inputs).

Each generator returns a function ``(dtype, rng) -> list[Sample]``. Arrays are made in
float64 (or int64/bool) and the suite casts tensor arguments to the dtype under test, so
the reference sees exactly the values the backend saw.
"""

from __future__ import annotations

import numpy as np

from unidl import dtypes as _dt
from unidl.spec.core import Sample

__all__ = ["rand", "unary", "binary", "SPECIALS", "UNARY_SHAPES", "BINARY_SHAPES", "reduction"]

UNARY_SHAPES = [(3, 4), (), (2, 0, 3), (2, 3, 5)]
BINARY_SHAPES = [((3, 4), (3, 4)), ((3, 1), (1, 4)), ((2, 3, 4), (4,)), ((), (2, 3)),
                 ((0, 3), (3,))]

#: special values used in NaN/inf propagation samples
SPECIALS = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0, -1.0, 2.5])


def rand(rng, shape, dtype: str, low=-3.0, high=3.0, avoid_zero=False):
    """A float64, int64 or bool array of ``shape`` with values suitable for ``dtype``."""
    if dtype == "bool":
        return rng.random(shape) > 0.5
    if _dt.is_int(dtype):
        lo = 0 if dtype.startswith("u") else int(max(low, -20))
        hi = int(min(max(high, 1), 20)) + 1
        return rng.integers(lo, hi, size=shape).astype(np.int64)
    x = rng.uniform(low, high, size=shape)
    if avoid_zero:
        x = np.where(np.abs(x) < 0.2, 0.2 * np.sign(x) + (x == 0) * 0.2, x)
    return x


def unary(low=-3.0, high=3.0, avoid_zero=False, shapes=None, specials=True, extra=()):
    """Samples for an elementwise unary op; ``specials`` adds a NaN/inf propagation sample."""

    def gen(dtype, rng):
        out = [Sample((rand(rng, s, dtype, low, high, avoid_zero),), name=f"shape{s}")
               for s in (shapes or UNARY_SHAPES)]
        if specials and _dt.is_float(dtype):
            out.append(Sample((SPECIALS.copy(),), name="nan_inf", grad=False))
        for args in extra:
            out.append(Sample(tuple(args), name="extra"))
        return out

    return gen


def binary(low=-3.0, high=3.0, avoid_zero_rhs=False, shapes=None, specials=True, low2=None,
           high2=None):
    """Samples for an elementwise binary op, with broadcasting and zero-size shapes."""

    def gen(dtype, rng):
        out = []
        for sx, sy in shapes or BINARY_SHAPES:
            x = rand(rng, sx, dtype, low, high)
            y = rand(rng, sy, dtype, low if low2 is None else low2,
                     high if high2 is None else high2, avoid_zero_rhs)
            if avoid_zero_rhs and _dt.is_int(dtype):
                y = np.where(y == 0, 1, y)
            out.append(Sample((x, y), name=f"{sx}x{sy}"))
        if specials and _dt.is_float(dtype):
            a = np.repeat(SPECIALS, len(SPECIALS))
            b = np.tile(SPECIALS, len(SPECIALS))
            out.append(Sample((a, b), name="nan_inf", grad=False))
        return out

    return gen


def reduction(low=-3.0, high=3.0, extra_params=(), keepdims=True, empty=True):
    """Samples for ``op(x, axis, keepdims, *extra_params)`` over many axis choices."""

    def gen(dtype, rng):
        out = []
        x = rand(rng, (3, 4, 5), dtype, low, high)
        for axis in (None, 0, -1, (0, 2), (-1, -2)):
            for kd in ((False, True) if keepdims else (False,)):
                out.append(Sample((x, axis, kd, *extra_params), name=f"axis={axis},kd={kd}"))
        out.append(Sample((rand(rng, (), dtype, low, high), None, False, *extra_params),
                          name="scalar"))
        if empty:
            out.append(Sample((rand(rng, (0, 3), dtype, low, high), 1, False, *extra_params),
                              name="empty", grad=False))
        return out

    return gen
