"""The NumPy backend: kernels are NumPy functions; autodiff is unidl's own engine."""

from __future__ import annotations

import numpy as np

from unidl import dtypes as _dt
from unidl.backend import Backend
from unidl_numpy.grad_kernels import GRAD_KERNELS
from unidl_numpy.kernels import all_kernels
from unidl_numpy.kernels.nn import seed_dropout
from unidl_numpy.optimizers import OPTIMIZER_KERNELS
from unidl_numpy.tape import bump_epoch, compile_function, is_recording, recorded

_ND = np.ndarray
_DTYPE_NAMES: dict = {}  # np.dtype -> unidl name (``dtype.name`` is slow, and asked per op)


def _as_array(fn):
    """Make a kernel always return ndarrays (NumPy returns scalars for 0-d results)."""

    def kernel(*args):
        out = fn(*args)
        if out.__class__ is _ND:
            return out
        if isinstance(out, (tuple, list)):
            return type(out)(o if o.__class__ is _ND else np.asarray(o) for o in out)
        return np.asarray(out)

    kernel.__name__ = getattr(fn, "__name__", "kernel")
    kernel.__wrapped__ = fn
    return recorded(kernel)


class NumpyBackend(Backend):
    name = "numpy"
    native_autodiff = False
    tensor_types = (np.ndarray,)
    #: steps replay a recorded tape of their kernel calls (``unidl_numpy.tape``), whose
    #: Python (like ``tf.function``'s) runs only while recording
    compile_by_default = True
    compile_traces = True

    def __init__(self):
        super().__init__()
        # every function computing or changing arrays is recorded into a step's tape
        self.kernels = {name: _as_array(fn) for name, fn in all_kernels().items()}
        self.optimizer_kernels = {k: recorded(f) for k, f in OPTIMIZER_KERNELS.items()}
        self.grad_kernels = {k: recorded(f, gradient=True) for k, f in GRAD_KERNELS.items()}

    def compile_function(self, fn, jit=False):
        """``fn`` recorded once per call signature, then replayed (``unidl_numpy.tape``)."""
        return compile_function(fn)

    def is_tracing(self):
        return is_recording()

    def version(self) -> str:
        return np.__version__

    def devices(self):
        return ["cpu"]

    def native_dtype(self, dtype):
        if dtype == "bfloat16":
            raise TypeError("NumPy has no bfloat16")
        return np.dtype(dtype)

    @recorded
    def convert(self, value, dtype=None):
        if dtype is not None:
            return np.asarray(value, dtype=_dt.numpy_dtype(dtype))
        if isinstance(value, (np.ndarray, np.generic)):
            return np.asarray(value)
        arr = np.asarray(value)
        if arr.dtype.kind == "f":
            return arr.astype(_dt.DEFAULT_FLOAT)
        if arr.dtype.kind in "iu":
            return arr.astype(_dt.DEFAULT_INT)
        return arr

    def to_numpy(self, x):
        return np.asarray(x)

    def dtype_of(self, x):
        d = x.dtype
        name = _DTYPE_NAMES.get(d)
        if name is None:
            name = _DTYPE_NAMES[d] = _dt.standardize(d)
        return name

    @recorded
    def cast(self, x, dtype):
        return x.astype(_dt.numpy_dtype(dtype))

    def new_variable(self, value, trainable, name):
        bump_epoch()  # (recorded tapes hold the storages they read)
        return np.array(value, copy=True, order="C")  # C order: BLAS-friendly storage

    @recorded
    def add_to_variable(self, storage, delta):
        """``storage += delta`` in place (a metric's running sums)."""
        np.add(storage, delta, out=storage)
        return storage

    def seed(self, seed):
        seed_dropout(seed)

    @recorded
    def assign_variable(self, storage, value):
        if storage.shape == np.shape(value):
            storage[...] = value
            return storage
        bump_epoch()  # (a new storage: tapes holding the old one are stale)
        return np.array(value, dtype=storage.dtype, copy=True)
