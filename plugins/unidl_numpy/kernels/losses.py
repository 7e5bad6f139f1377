"""NumPy losses kernels."""

KERNELS: dict = {}
