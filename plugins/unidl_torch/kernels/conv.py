"""torch conv kernels."""

KERNELS: dict = {}
