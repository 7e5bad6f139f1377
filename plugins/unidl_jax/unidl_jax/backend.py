"""The JAX backend: kernels on ``jax.numpy``/``jax.lax``; autodiff is ``jax.vjp``; ``Model``'s
steps are compiled with ``jax.jit`` (:mod:`unidl_jax.compile`).

Loading the backend turns on ``jax_enable_x64``: unidl has float64 (the conformance suite's
reference dtype), and without the flag JAX silently makes float64 arrays float32. Every array
unidl makes gets an explicit dtype, so unidl's own defaults (float32, int32) do not change;
JAX code of your own that relies on JAX's defaults then gets 64-bit arrays (``docs/jax.md``).
"""

from __future__ import annotations

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from jax.core import Tracer  # noqa: E402

from unidl import dtypes as _dt  # noqa: E402
from unidl.backend import Backend  # noqa: E402
from unidl.backend.state import STATE  # noqa: E402
from unidl_jax import state as _state  # noqa: E402
from unidl_jax.compile import CompiledStep, CreatesState, discovering, is_tracing  # noqa: E402
from unidl_jax.kernels import all_kernels  # noqa: E402

DTYPES = {name: np.dtype(_dt.numpy_dtype(name)) for name in (
    "bool", "uint8", "int8", "int16", "int32", "int64", "float16", "bfloat16", "float32",
    "float64")}
NAMES = {v: k for k, v in DTYPES.items()}


def _tracer_classes() -> tuple:
    """Every tracer class JAX has (exact classes: unidl dispatches on ``x.__class__``)."""
    import jax._src.interpreters.ad  # noqa: F401  (make sure the subclasses are defined)
    import jax._src.interpreters.batching  # noqa: F401
    import jax._src.interpreters.partial_eval  # noqa: F401

    found, todo = [], [Tracer]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return tuple(found)


def _array_classes() -> tuple:
    return tuple({type(jnp.zeros(())), type(jnp.zeros((2,), jnp.float32))})


def jax_device(device: str | None):
    """The ``jax.Device`` for a unidl device name (``cpu``, ``cuda:0``)."""
    if not device or device == "cpu":
        return jax.devices("cpu")[0]
    kind, _, index = device.partition(":")
    platform = "gpu" if kind == "cuda" else kind
    return jax.devices(platform)[int(index or 0)]


def _put(arr):
    """A new array on the current device (``unidl.device(...)``), or the default one."""
    return jax.device_put(arr, jax_device(STATE.device)) if STATE.device else arr


#: bytes from which a NumPy batch goes to the device with ``jax.device_put``: for a 400 KB
#: float32 batch it takes 71 us where ``jnp.asarray`` takes 132 (interleaved, jax 0.10, CPU);
#: below, ``jnp.asarray``'s lower fixed cost wins (a 1 KB label batch: 14 us against 28)
_DEVICE_PUT_BYTES = 1 << 14


def _batch(value):
    """A NumPy batch (any size, a supported dtype) as a JAX array on the current device."""
    if value.nbytes < _DEVICE_PUT_BYTES:
        return _put(jnp.asarray(value))
    return jax.device_put(value, jax_device(STATE.device) if STATE.device else None)


class JaxBackend(Backend):
    name = "jax"
    native_autodiff = True
    compile_by_default = True  # jax.jit is JAX's fast path (eager JAX dispatches op by op)
    compile_traces = True  # a jit-compiled step runs its Python only while tracing

    def __init__(self):
        super().__init__()
        self.tensor_types = _array_classes() + _tracer_classes()
        self.kernels = dict(all_kernels())
        from unidl_jax.optimizers import OPTIMIZER_KERNELS

        self.optimizer_kernels = dict(OPTIMIZER_KERNELS)
        _state.make_key_box()

    def version(self):
        return jax.__version__

    def devices(self):
        out = ["cpu"]
        try:
            out += [f"cuda:{i}" for i, _ in enumerate(jax.devices("gpu"))]
        except RuntimeError:  # (no GPU platform)
            pass
        return out

    def native_dtype(self, dtype):
        return DTYPES[dtype]

    def convert(self, value, dtype=None):
        nd = DTYPES[dtype] if dtype is not None else None
        if value.__class__ is np.ndarray and value.dtype.kind in "fiub":  # (a batch)
            if nd is not None and value.dtype != nd:
                value = value.astype(nd)  # (cast on the host: no eager device op)
            return _batch(value)
        if isinstance(value, self.tensor_types):
            return value if nd is None or value.dtype == nd else value.astype(nd)
        if nd is None:
            arr = np.asarray(value)
            kind = arr.dtype.kind
            if not isinstance(value, (np.ndarray, np.generic)):  # Python values: unidl defaults
                nd = {"f": DTYPES["float32"], "i": DTYPES["int32"], "u": DTYPES["int32"],
                      "b": DTYPES["bool"]}.get(kind)
            elif kind not in "fiub" and arr.dtype.name != "bfloat16":
                raise TypeError(f"cannot convert an array of dtype {arr.dtype} to a JAX tensor")
            value = arr
        return _put(jnp.asarray(value, dtype=nd))

    def to_numpy(self, x):
        return np.asarray(x)

    def dtype_of(self, x):
        return NAMES[x.dtype]

    def cast(self, x, dtype):
        return x.astype(DTYPES[dtype])

    def device_of(self, x):
        try:
            (dev,) = x.devices()
        except (AttributeError, ValueError, jax.errors.ConcretizationTypeError):
            return "cpu"
        return "cpu" if dev.platform == "cpu" else f"cuda:{dev.id}"

    def to_device(self, x, device):
        return jax.device_put(x, jax_device(device))

    def device_scope(self, device):
        return jax.default_device(jax_device(device))

    # -- autodiff -----------------------------------------------------------------------------
    def vjp(self, fn, primals, create_graph=False):
        out, pullback = jax.vjp(lambda *leaves: list(fn(*leaves)), *primals)

        def vjp_fn(cotangents):
            cts = [_cotangent(o, c) for o, c in zip(out, cotangents)]
            return [None if _no_gradient(p) else g for p, g in zip(primals, pullback(cts))]

        return out, vjp_fn

    # -- variables (boxes: JAX arrays are immutable) ----------------------------------------
    def new_variable(self, value, trainable, name):
        if discovering():
            raise CreatesState(name)
        return _state.Box(jax.lax.stop_gradient(value) if isinstance(value, Tracer) else value,
                          name or "variable")

    def read_variable(self, storage):
        return _state.read(storage)

    def assign_variable(self, storage, value):
        return _state.write(storage, value)

    # -- randomness and execution ------------------------------------------------------------
    def seed(self, seed):
        _state.seed_key(seed)

    def is_tracing(self):
        return is_tracing()

    def compile_function(self, fn, jit=False):
        """``fn`` through ``jax.jit``, the Variables it uses threaded in and out
        (:class:`unidl_jax.compile.CompiledStep`)."""
        return CompiledStep(fn)

    def strict_numerics(self):
        return jax.default_matmul_precision("highest")

    def synchronize(self):
        for box in list(_state.ALL_BOXES):
            value = box.value
            if not isinstance(value, Tracer):
                value.block_until_ready()


def _cotangent(out, ct):
    """A cotangent JAX accepts for ``out``: zeros for None; ``float0`` for integer outputs."""
    if not jnp.issubdtype(out.dtype, jnp.inexact):
        return np.zeros(out.shape, dtype=jax.dtypes.float0)
    if ct is None:
        return jnp.zeros_like(out)
    return ct if ct.dtype == out.dtype else ct.astype(out.dtype)


def _no_gradient(primal) -> bool:
    return not jnp.issubdtype(primal.dtype, jnp.inexact)
