"""NumPy shape kernels."""

KERNELS: dict = {}
