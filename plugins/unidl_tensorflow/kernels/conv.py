"""tensorflow conv kernels."""

KERNELS: dict = {}
