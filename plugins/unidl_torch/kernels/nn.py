"""torch nn kernels."""

KERNELS: dict = {}
