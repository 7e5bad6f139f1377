"""NumPy nn kernels."""

KERNELS: dict = {}
