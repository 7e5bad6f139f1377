"""The NumPy backend's compiled steps: unidl's recorded tape (:mod:`unidl.backend.tape`) over
``np.ndarray`` (registered there: host arrays are constants in every backend's steps). Every
step is recorded, training steps included: on NumPy the gradients are unidl's own gradient
kernels, recorded like the forward kernels."""

from __future__ import annotations

from unidl.backend.tape import (
    bump_epoch,
    compile_function,
    is_recording,
    recorded,
    replaying_gradients,
)

__all__ = ["compile_function", "recorded", "is_recording", "replaying_gradients",
           "bump_epoch"]
