"""The TensorFlow backend: kernels are TF ops; autodiff is ``tf.GradientTape``.

Device names: TensorFlow's ``/CPU:i`` is unidl's ``cpu`` (i = 0) or ``cpu:i``; ``/GPU:i`` is
``cuda:i``. Set ``UNIDL_TF_LOGICAL_CPUS=N`` before the backend loads to split the host CPU
into N logical devices (used to test the device dimension on machines without a GPU).

TensorFlow's log output: when this module loads (never at ``import unidl``), it sets
``TF_CPP_MIN_LOG_LEVEL=2`` if the user has not set that variable (as before: TensorFlow's C++
INFO and WARNING lines hidden, errors kept); set the variable yourself to choose another
level. TensorFlow is imported through :func:`unidl_tensorflow.startup.import_tensorflow`,
so its start-up lines ("oneDNN custom operations are on...", absl's "All log messages
before absl::InitializeLog()...") show once instead of twice. They are printed by each of
the two copies of TensorFlow's platform layer, and the log level does not hide them.
unidl leaves ``TF_ENABLE_ONEDNN_OPTS`` to the user; its kernels are right with oneDNN on or
off (see :mod:`unidl_tensorflow.onednn`).
"""

from __future__ import annotations

import contextlib
import os

import numpy as np

from unidl.backend import Backend
from unidl_tensorflow.startup import import_tensorflow

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
tf = import_tensorflow()

from unidl_tensorflow.kernels import all_kernels  # noqa: E402  (imports tensorflow)

DTYPES = {
    "bool": tf.bool, "uint8": tf.uint8, "int8": tf.int8, "int16": tf.int16,
    "int32": tf.int32, "int64": tf.int64, "float16": tf.float16,
    "bfloat16": tf.bfloat16, "float32": tf.float32, "float64": tf.float64,
}
NAMES = {v: k for k, v in DTYPES.items()}


def _configure_logical_cpus():
    n = int(os.environ.get("UNIDL_TF_LOGICAL_CPUS", "0") or 0)
    if n > 1:
        cpus = tf.config.list_physical_devices("CPU")
        try:
            tf.config.set_logical_device_configuration(
                cpus[0], [tf.config.LogicalDeviceConfiguration() for _ in range(n)])
        except RuntimeError:  # already initialized
            pass


def _tensor_classes():
    classes = {type(tf.constant(0.0)), tf.Tensor}
    try:
        from tensorflow.python.framework.ops import SymbolicTensor

        classes.add(SymbolicTensor)
    except ImportError:  # older TF: graph tensors are tf.Tensor itself
        pass
    return tuple(classes)


def _tf_device(device: str) -> str:
    if device == "cpu":
        return "/CPU:0"
    kind, _, idx = device.partition(":")
    return f"/{'GPU' if kind == 'cuda' else kind.upper()}:{idx or 0}"


class TensorFlowBackend(Backend):
    name = "tensorflow"
    native_autodiff = True
    compile_by_default = True  # tf.function is TensorFlow's fast path for a whole step
    compile_traces = True  # (its Python body runs only while tracing)

    def __init__(self):
        super().__init__()
        _configure_logical_cpus()
        # (before any tensor: collective ops are configured before TensorFlow initializes)
        from unidl_tensorflow.distributed import prepare_at_load

        prepare_at_load()
        self.tensor_types = _tensor_classes()
        self.kernels = dict(all_kernels())

    def version(self):
        return tf.__version__

    def devices(self):
        from unidl_tensorflow.distributed import local_device_prefix

        out, local = [], local_device_prefix()  # (a cluster worker: not the others' devices)
        for d in tf.config.list_logical_devices():
            if local is not None and d.name.startswith("/job:") and \
                    not d.name.startswith(local):
                continue
            kind, idx = d.device_type, int(d.name.rsplit(":", 1)[-1])
            if kind == "CPU":
                out.append("cpu" if idx == 0 else f"cpu:{idx}")
            elif kind == "GPU":
                out.append(f"cuda:{idx}")
        return out

    def native_dtype(self, dtype):
        return DTYPES[dtype]

    def convert(self, value, dtype=None):
        td = DTYPES[dtype] if dtype is not None else None
        if isinstance(value, (tf.Tensor, tf.Variable)):
            return tf.cast(value, td) if td is not None and value.dtype != td else \
                tf.convert_to_tensor(value)
        arr = np.asarray(value)
        if td is None:
            if arr.dtype.kind == "f" and not isinstance(value, (np.ndarray, np.generic)):
                td = tf.float32
            elif arr.dtype.kind in "iu" and not isinstance(value, (np.ndarray, np.generic)):
                td = tf.int32
            elif arr.dtype.name == "bfloat16":
                td = tf.bfloat16
        if td is not None and arr.dtype != np.dtype(object):
            if td in (tf.bfloat16,) or arr.dtype.name == "bfloat16":
                return tf.cast(tf.constant(arr.astype(np.float32)), td)
            return tf.constant(arr, dtype=td) if arr.dtype == td.as_numpy_dtype else \
                tf.cast(tf.constant(arr), td)
        return tf.constant(arr)

    def to_numpy(self, x):
        return np.asarray(x.numpy() if hasattr(x, "numpy") else x)

    def dtype_of(self, x):
        return NAMES[x.dtype]

    def cast(self, x, dtype):
        return tf.cast(x, DTYPES[dtype])

    def device_of(self, x):
        name = x.device or "/CPU:0"
        kind, idx = name.rsplit("/", 1)[-1].split(":")[-2:]
        kind = kind.upper().replace("DEVICE", "")
        if "GPU" in kind:
            return f"cuda:{idx}"
        return "cpu" if idx == "0" else f"cpu:{idx}"

    def device_scope(self, device):
        return tf.device(_tf_device(device))

    def to_device(self, x, device):
        with tf.device(_tf_device(device)):
            return tf.identity(x)

    def vjp(self, fn, primals, create_graph=False):
        tape = tf.GradientTape(persistent=True)
        with tape:
            for p in primals:
                if p.dtype.is_floating:
                    tape.watch(p)
            out = fn(*primals)

        def vjp_fn(cotangents):
            pairs = [(o, c) for o, c in zip(out, cotangents) if c is not None]
            wrt = [(i, p) for i, p in enumerate(primals) if p.dtype.is_floating]
            grads = [None] * len(primals)
            if not pairs or not wrt:
                return grads
            got = tape.gradient([o for o, _ in pairs], [p for _, p in wrt],
                                output_gradients=[c for _, c in pairs],
                                unconnected_gradients=tf.UnconnectedGradients.NONE)
            for (i, _), g in zip(wrt, got):
                if isinstance(g, tf.IndexedSlices):
                    g = tf.convert_to_tensor(g)
                grads[i] = g
            return grads

        return out, vjp_fn

    def new_variable(self, value, trainable, name):
        return tf.Variable(value, trainable=trainable, name=name)

    def read_variable(self, storage):
        return storage.value() if hasattr(storage, "value") else storage

    def add_to_variable(self, storage, delta):
        """``storage += delta`` (a metric's running sums; also inside ``tf.function``);
        an integer count is converted to the storage's dtype."""
        if getattr(delta, "dtype", storage.dtype) != storage.dtype:
            delta = tf.cast(delta, storage.dtype)
        storage.assign_add(delta)
        return storage

    def seed(self, seed):
        tf.random.set_seed(seed)

    def is_tracing(self):
        return not tf.executing_eagerly()

    def assign_variable(self, storage, value):
        if storage.shape == value.shape:
            storage.assign(value)
            return storage
        return tf.Variable(value, trainable=storage.trainable)

    @contextlib.contextmanager
    def strict_numerics(self):
        was = tf.config.experimental.tensor_float_32_execution_enabled()
        tf.config.experimental.enable_tensor_float_32_execution(False)
        try:
            yield
        finally:
            tf.config.experimental.enable_tensor_float_32_execution(was)

    def distributed_engine(self, options):
        """``tf.distribute.MultiWorkerMirroredStrategy`` over the cluster in ``TF_CONFIG``
        (made when the backend loaded): see :mod:`unidl_tensorflow.distributed`."""
        from unidl_tensorflow.distributed import TensorFlowEngine, made_strategy

        return TensorFlowEngine(options, made_strategy() if options.world_size > 1 else None)

    def compile_function(self, fn, jit=False):
        # unidl code uses only Python control flow: autograph would only slow tracing down
        return _Dispatch(tf.function(fn, jit_compile=bool(jit), reduce_retracing=True,
                                     autograph=False))


class _Dispatch:
    """A ``tf.function`` whose calls with eager tensors of a signature seen before go
    straight to that signature's concrete function, skipping the polymorphic dispatch
    (argument binding and trace-cache lookup: ~0.1-0.2 ms per call on a small CPU, a few
    percent of a small model's step). For eager callers outside a distribution strategy the
    ``tf.function`` would pick that same concrete function: its cache key is the argument
    signature (the device scope is not part of it). Anything else goes through the
    ``tf.function``."""

    def __init__(self, function):
        self.function = function
        self.concrete = {}
        self.__wrapped__ = function
        # (the eager tensor class; made here, not at import: a tensor made at import would
        # initialize TensorFlow before the backend configures its logical devices)
        self._eager = type(tf.constant(0.0))

    def __call__(self, *args, **kwargs):
        key = None
        if not kwargs and not tf.distribute.has_strategy():  # (strategies retrace per device)
            key = []
            for a in args:
                if a.__class__ is not self._eager:
                    key = None
                    break
                key.append((a.dtype, tuple(a.shape)))
        try:
            if key is not None:
                key = tuple(key)
                concrete = self.concrete.get(key)
                if concrete is not None:
                    return concrete(*args)
            out = self.function(*args, **kwargs)
        except tf.errors.OpError as exc:  # (a collective failed: a worker died)
            from unidl_tensorflow.distributed import collective_failure

            error = collective_failure(exc)
            if error is None:
                raise
            raise error from None
        if key is not None and len(self.concrete) < 32:
            try:
                self.concrete[key] = self.function.get_concrete_function(*args)
            except Exception:  # (not expected; the tf.function keeps working)
                pass
        return out

    def get_concrete_function(self, *args, **kwargs):
        return self.function.get_concrete_function(*args, **kwargs)

