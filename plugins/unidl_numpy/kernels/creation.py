"""NumPy creation kernels."""

KERNELS: dict = {}
