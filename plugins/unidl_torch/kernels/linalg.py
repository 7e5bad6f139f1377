"""torch linalg kernels."""

KERNELS: dict = {}
