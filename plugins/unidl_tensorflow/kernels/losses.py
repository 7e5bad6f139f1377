"""tensorflow losses kernels."""

KERNELS: dict = {}
