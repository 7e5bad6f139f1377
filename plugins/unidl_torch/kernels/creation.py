"""torch creation kernels."""

KERNELS: dict = {}
