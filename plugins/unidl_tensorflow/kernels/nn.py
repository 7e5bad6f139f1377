"""tensorflow nn kernels."""

KERNELS: dict = {}
