"""tensorflow reduction kernels."""

KERNELS: dict = {}
