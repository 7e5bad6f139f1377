"""NumPy conv kernels."""

KERNELS: dict = {}
