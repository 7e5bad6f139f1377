"""tensorflow linalg kernels."""

KERNELS: dict = {}
