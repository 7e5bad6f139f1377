"""JAX kernels, one module per op family; each module exports ``KERNELS``."""

from __future__ import annotations

import importlib

FAMILIES = ("creation", "elementwise", "reduction", "shape", "indexing", "linalg", "nn", "conv",
            "pool", "losses", "rnn", "image", "quant")


def all_kernels() -> dict:
    out: dict = {}
    for family in FAMILIES:
        try:
            module = importlib.import_module(f"{__name__}.{family}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{family}":
                raise
            continue  # (a family without kernels: its ops use the spec's composites)
        out.update(module.KERNELS)
    return out
