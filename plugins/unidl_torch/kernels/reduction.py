"""torch reduction kernels."""

KERNELS: dict = {}
