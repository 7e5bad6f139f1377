"""NumPy reduction kernels."""

KERNELS: dict = {}
