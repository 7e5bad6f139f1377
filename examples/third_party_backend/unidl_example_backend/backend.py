"""The ``example`` backend: tensors are NumPy arrays; each primitive delegates to NumPy.

It reuses the kernels of unidl's NumPy plugin (any backend may); a real backend would map
each primitive to its own library here. ``native_autodiff = False`` gives it unidl's
reverse-mode engine for free.
"""

from unidl_numpy.backend import NumpyBackend


class ExampleBackend(NumpyBackend):
    name = "example"

    def version(self) -> str:
        return "0.1.0"
