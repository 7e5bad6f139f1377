"""What a forward kernel keeps for its gradient kernel (the LSTM's gates, the loss's softmax).

A forward kernel computes, on the way, values its gradient kernel would compute again
(``lstm``'s gates and cell states, ``sparse_categorical_crossentropy``'s softmax, a
convolution's im2col columns, which ``conv_backprop_kernel`` multiplies by the cotangent). When a
gradient may follow (unidl's engine is tracing on this thread, or a recorded step with
gradient kernels is replayed), the forward kernel keeps them here, keyed by the op's name
and its output array; the gradient kernel takes them if they belong to the very output it
is given (``is``), and otherwise computes them. One value per op is kept (the last), so an
unused one costs memory only until the op runs again. Kept values are computed by the same
float operations as the gradient kernel's own, so taking them changes no bit.
"""

from __future__ import annotations

from unidl.backend.state import STATE
from unidl_numpy import tape as _tape

__all__ = ["wanted", "put", "take", "put_for_input", "take_for_input"]

_KEPT: dict = {}  # op name -> (output array, kept values)


def wanted() -> bool:
    """Whether a gradient of what runs now may follow (see the module docstring)."""
    return STATE.tracing > 0 or _tape.replaying_gradients()


def put(op: str, out, value) -> None:
    """Keep ``value`` for the gradient of ``op``'s output ``out``."""
    _KEPT[op] = (out, value)


def take(op: str, out):
    """The value kept for ``op``'s output ``out`` (removed), or None."""
    got = _KEPT.get(op)
    if got is None or got[0] is not out:
        return None
    del _KEPT[op]
    return got[1]


_BY_INPUT: dict = {}  # (op name, id(input)) -> (input array, geometry key, kept value)
MAX_BY_INPUT = 8  # (the oldest are dropped beyond this: kept values of an unused forward)


def put_for_input(op: str, arr, key, value) -> None:
    """Keep ``value`` computed from the input ``arr`` of ``op`` with the geometry ``key``
    (several per op: one per input, e.g. the im2col columns of each convolution)."""
    if len(_BY_INPUT) >= MAX_BY_INPUT:
        del _BY_INPUT[next(iter(_BY_INPUT))]
    _BY_INPUT[(op, id(arr))] = (arr, key, value)


def take_for_input(op: str, arr, key):
    """The value kept for ``op``'s input ``arr`` with geometry ``key`` (removed), or None."""
    got = _BY_INPUT.get((op, id(arr)))
    if got is None or got[0] is not arr or got[1] != key:
        return None
    del _BY_INPUT[(op, id(arr))]
    return got[2]
