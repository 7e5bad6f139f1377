"""``unidl.Variable``: mutable state (weights, optimizer slots) held natively by the backend.

A Variable is stored the way its backend stores parameters: a ``torch.Tensor`` with
``requires_grad`` (a leaf of autograd), a ``tf.Variable``, or a NumPy array updated in place.
Every op accepts a Variable where it accepts a tensor (``__unidl_tensor__`` returns the native
value), and ``unidl.grad`` differentiates with respect to Variables passed as arguments.

The backend is fixed when the Variable is made (the active one then); ``assign`` converts
what it is given to the Variable's dtype and never changes its shape.

Example:
    >>> import unidl
    >>> from unidl import ops
    >>> with unidl.use_backend("numpy"):
    ...     v = unidl.Variable([1.0, 2.0], name="w")
    ...     _ = v.assign_add([0.5, 0.5])
    ...     v.numpy().tolist(), v.dtype, v.shape
    ([1.5, 2.5], 'float32', (2,))
"""

from __future__ import annotations

import numpy as np

from unidl import dtypes as _dt
from unidl.backend.state import current_backend

__all__ = ["Variable"]


_OPS = []


def _ops():
    """``unidl.ops`` (imported on first use; cached, as this is on the training hot path)."""
    if not _OPS:
        from unidl import ops

        _OPS.append(ops)
    return _OPS[0]


class Variable:
    """A named, mutable tensor on the active backend.

    Args:
        value: the initial value: a tensor, a NumPy array, a list, a scalar or another
            Variable. NumPy arrays keep their dtype; Python floats give ``float32`` and
            Python ints ``int32`` (as :func:`unidl.ops.convert_to_tensor`).
        trainable: whether gradients are meant to flow to it (on PyTorch: ``requires_grad``;
            on TensorFlow: ``tf.Variable(trainable=...)``). Non-float Variables are never
            trainable in the autograd sense.
        name: a label (shown in ``repr``, given to ``tf.Variable``); default ``"variable"``.
        dtype: the unidl dtype to store (the value is cast); default: the value's.
    """

    __slots__ = ("_storage", "_be", "_trainable", "_name", "_dtype", "_shape", "_override",
                 "__weakref__", "__dict__")  # __dict__: layers attach regularizer/constraint

    def __init__(self, value, trainable: bool = True, name: str | None = None, dtype=None):
        be = current_backend()
        if isinstance(value, Variable):
            value = value.value
        d = None if dtype is None else _dt.standardize(dtype)
        t = _ops().convert_to_tensor(value, d)
        self._be = be
        self._dtype = be.dtype_of(t)
        self._trainable = bool(trainable)
        self._name = "variable" if name is None else str(name)
        self._storage = be.new_variable(t, self._trainable, self._name)
        self._shape = tuple(be.shape_of(t))
        self._override = None

    # -- reading -------------------------------------------------------------------------------
    def __unidl_tensor__(self):
        """The current value as a native tensor (what every op receives)."""
        o = self._override
        return self._be.read_variable(self._storage) if o is None else o

    @property
    def value(self):
        """The current value as a native tensor of the Variable's backend.

        On NumPy and PyTorch this is the storage itself, which ``assign`` updates in place;
        use :meth:`numpy` for a snapshot. On TensorFlow it is a read of the ``tf.Variable``.
        """
        o = self._override
        return self._be.read_variable(self._storage) if o is None else o

    def numpy(self) -> np.ndarray:
        """A NumPy copy of the current value (never aliasing the storage)."""
        return np.array(self._be.to_numpy(self._be.read_variable(self._storage)), copy=True)

    @property
    def shape(self) -> tuple:
        return self._shape

    @property
    def dtype(self) -> str:
        """The unidl dtype name, e.g. ``"float32"``."""
        return self._dtype

    @property
    def ndim(self) -> int:
        return len(self._shape)

    @property
    def size(self) -> int:
        return int(np.prod(self._shape, dtype=np.int64))

    @property
    def trainable(self) -> bool:
        return self._trainable

    @property
    def name(self) -> str:
        return self._name

    @property
    def backend(self) -> str:
        """The name of the backend holding this Variable."""
        return self._be.name

    @property
    def device(self) -> str:
        """The unidl name of the device holding this Variable (``"cpu"``, ``"cuda:0"``)."""
        return self._be.device_of(self._be.read_variable(self._storage))

    @property
    def storage(self):
        """The native storage (``torch.Tensor`` leaf, ``tf.Variable`` or ``np.ndarray``)."""
        return self._storage

    # -- writing -------------------------------------------------------------------------------
    def _native(self, value):
        be = self._be
        if isinstance(value, Variable):
            value = value.value
        else:
            get = getattr(value, "__unidl_tensor__", None)
            if get is not None:
                value = get()
        if be.is_tensor(value):
            if be.dtype_of(value) != self._dtype:
                value = be.cast(value, self._dtype)
        else:
            value = be.convert(value, self._dtype)
        shape = tuple(be.shape_of(value))
        if shape != self._shape and None not in shape:
            if shape == ():  # a scalar fills the Variable
                value = _ops().broadcast_to(value, self._shape)
            else:
                raise ValueError(f"Variable {self._name!r}: cannot assign a value of shape "
                                 f"{shape} to a variable of shape {self._shape}")
        return value

    def assign(self, value):
        """Set the value (converted to the Variable's dtype; same shape, or a scalar that fills
        it). Returns the Variable. On PyTorch the storage is updated in place under
        ``no_grad`` (autograd leaves stay leaves); on TensorFlow it is ``tf.Variable.assign``,
        which also works inside ``tf.function``."""
        self._storage = self._be.assign_variable(self._storage, self._native(value))
        return self

    def _assign_native(self, value):
        """Assign a native tensor already of this Variable's backend, dtype and shape (the
        optimizers' fast path: no conversion, no checks)."""
        self._storage = self._be.assign_variable(self._storage, value)

    def assign_add(self, delta):
        """``self.assign(self + delta)``; returns the Variable."""
        ops = _ops()
        cur = ops.stop_gradient(self._be.read_variable(self._storage))
        return self.assign(ops.add(cur, self._native(delta)))

    def assign_sub(self, delta):
        """``self.assign(self - delta)``; returns the Variable."""
        ops = _ops()
        cur = ops.stop_gradient(self._be.read_variable(self._storage))
        return self.assign(ops.subtract(cur, self._native(delta)))

    # -- autodiff hook -------------------------------------------------------------------------
    def _unidl_swap(self, new):
        """Make the Variable read as ``new`` (a traced value) until swapped back; returns the
        previous override. Used by ``unidl.grad`` to differentiate with respect to it."""
        old = self._override
        self._override = new
        return old

    # -- conveniences --------------------------------------------------------------------------
    def __repr__(self) -> str:
        try:
            body = np.array2string(self.numpy(), threshold=8, edgeitems=2, separator=", ")
        except Exception:  # a symbolic value inside a compiled function
            body = "<symbolic>"
        return (f"<unidl.Variable {self._name!r} shape={self._shape} dtype={self._dtype} "
                f"backend={self._be.name} value={body}>")

    def __array__(self, dtype=None, copy=None):
        a = self.numpy()
        return a if dtype is None else a.astype(dtype)

    def __len__(self) -> int:
        if not self._shape:
            raise TypeError("len() of a 0-d Variable")
        return self._shape[0]

    def __float__(self) -> float:
        return float(self.numpy())

    def __int__(self) -> int:
        return int(self.numpy())

    def __bool__(self) -> bool:
        return bool(self.numpy())

    def __getitem__(self, key):
        return self.__unidl_tensor__()[key]

    def __neg__(self):
        return _ops().negative(self)

    def __add__(self, other):
        return _ops().add(self, other)

    def __radd__(self, other):
        return _ops().add(other, self)

    def __sub__(self, other):
        return _ops().subtract(self, other)

    def __rsub__(self, other):
        return _ops().subtract(other, self)

    def __mul__(self, other):
        return _ops().multiply(self, other)

    def __rmul__(self, other):
        return _ops().multiply(other, self)

    def __truediv__(self, other):
        return _ops().divide(self, other)

    def __rtruediv__(self, other):
        return _ops().divide(other, self)

    def __matmul__(self, other):
        return _ops().matmul(self, other)

    def __rmatmul__(self, other):
        return _ops().matmul(other, self)

    def __pow__(self, other):
        return _ops().power(self, other)
