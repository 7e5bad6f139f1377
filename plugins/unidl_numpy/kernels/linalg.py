"""NumPy linalg kernels."""

KERNELS: dict = {}
