"""The one table of numerical tolerances used to compare a backend with the reference.

Every comparison in the conformance suite and the tests takes its ``(rtol, atol)`` from here,
so a reader can see in one place why two numbers were judged equal.

The values follow ``torch.testing.assert_close`` for plain elementwise work and are loosened,
per *kind* of op, where the computation accumulates rounding error:

* ``elementwise``: one rounding per output plus the error of a transcendental function
  (a few ulp). float32 rtol 1e-5 is about 80 ulp of float32: libm implementations differ.
* ``reduction``: sums over up to a few thousand terms (error grows like sqrt(n) ulp).
* ``contraction``: matmul, conv, einsum; the float32 bound of about 1e-4 relative that
  PyTorch's own op tests use, since BLAS libraries reorder the sums.
* ``exact``: integer and boolean results, indices, shape ops: must match bit for bit.
  A float result of an ``exact`` op (``dequantize``: one correctly rounded multiplication)
  is compared with the float64 reference rounded once to the result's dtype.

``grad`` tolerances compare gradients (analytic against finite differences, or a backend
against the NumPy engine); they follow JAX's ``check_grads`` (float32 2e-3, float16 1e-2,
bfloat16 1e-1) and ``gradcheck`` in float64 (atol 1e-5, rtol 1e-3).
"""

from __future__ import annotations

__all__ = ["TOLERANCES", "GRAD_TOLERANCES", "OPTIMIZER_TOLERANCES", "TRAINING_RTOL",
           "tolerance", "KINDS"]

KINDS = ("exact", "elementwise", "reduction", "contraction")

#: (rtol, atol) by kind of op and dtype, for forward results against the float64 reference.
TOLERANCES: dict[str, dict[str, tuple[float, float]]] = {
    "elementwise": {
        "float64": (1e-7, 1e-7),
        "float32": (1e-5, 1e-6),
        "float16": (2e-3, 1e-3),
        "bfloat16": (1.6e-2, 1e-2),
    },
    "reduction": {
        "float64": (1e-7, 1e-7),
        "float32": (5e-5, 1e-5),
        "float16": (1e-2, 5e-3),
        "bfloat16": (5e-2, 5e-2),
    },
    "contraction": {
        "float64": (1e-7, 1e-7),
        "float32": (1e-4, 1e-4),
        "float16": (1e-2, 1e-2),
        "bfloat16": (5e-2, 5e-2),
    },
}

#: (rtol, atol) for gradients, by dtype.
GRAD_TOLERANCES: dict[str, tuple[float, float]] = {
    "float64": (1e-5, 1e-5),
    "float32": (2e-3, 2e-3),
    "float16": (1e-2, 1e-2),
    "bfloat16": (1e-1, 1e-1),
}

#: (rtol, atol) for optimizer trajectories (5+ steps against the float64 update rule);
#: the Keras optimizer golden tests use 5e-4 for float32.
OPTIMIZER_TOLERANCES: dict[str, tuple[float, float]] = {
    "float64": (1e-9, 1e-9),
    "float32": (5e-5, 5e-5),
    "float16": (1e-2, 1e-2),
    "bfloat16": (5e-2, 5e-2),
}

#: relative tolerance for per-step training losses of the same model, seed and data on two
#: backends in float32 (deterministic mode): 20 Adam steps of float32 rounding differences.
TRAINING_RTOL = 1e-4


def tolerance(dtype: str, kind: str = "elementwise") -> tuple[float, float]:
    """Return ``(rtol, atol)`` for comparing results of ``dtype`` computed by an op of ``kind``.

    Integer and boolean dtypes, and the ``exact`` kind, compare exactly: ``(0.0, 0.0)``.

    Example:
        >>> tolerance("float32", "contraction")
        (0.0001, 0.0001)
        >>> tolerance("int32")
        (0.0, 0.0)
    """
    if kind == "exact" or dtype not in TOLERANCES["elementwise"]:
        return (0.0, 0.0)
    return TOLERANCES[kind][dtype]
