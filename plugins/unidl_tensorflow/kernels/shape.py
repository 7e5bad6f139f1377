"""tensorflow shape kernels."""

KERNELS: dict = {}
