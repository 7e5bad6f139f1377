"""tensorflow creation kernels."""

KERNELS: dict = {}
