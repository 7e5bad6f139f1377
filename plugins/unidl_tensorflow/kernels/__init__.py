"""tensorflow kernels, one module per op family; each module exports ``KERNELS``."""

from __future__ import annotations

import importlib

FAMILIES = ("creation", "elementwise", "reduction", "shape", "linalg", "nn", "conv", "losses",
            "rnn", "image", "quant")


def all_kernels() -> dict:
    out: dict = {}
    for family in FAMILIES:
        module = importlib.import_module(f"{__name__}.{family}")
        out.update(module.KERNELS)
    return out
