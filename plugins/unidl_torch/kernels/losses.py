"""torch losses kernels."""

KERNELS: dict = {}
