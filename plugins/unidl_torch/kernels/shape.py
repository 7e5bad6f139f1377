"""torch shape kernels."""

KERNELS: dict = {}
