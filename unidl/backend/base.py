"""What a backend plugin provides: a :class:`BackendEntry` (cheap, declared at discovery) whose
``load`` returns a :class:`Backend` (imports the framework, holds the kernels).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

__all__ = ["Backend", "BackendEntry"]


@dataclass
class BackendEntry:
    """A backend as declared by a plugin, before its framework is imported.

    Attributes:
        name: the name users select (``UNIDL_BACKEND=name``).
        load: imports the framework and returns a :class:`Backend`.
        distributions: distribution names whose installed version is the backend's version
            (the first one installed wins), looked up without importing anything.
        extra: the ``unidl`` extra that installs the framework (for error messages).
        description: one line for ``unidl backends``.
        exporters: the export formats the backend writes, for ``Model.export(path,
            format=...)``: ``{format: "module:function"}``, the function imported (and the
            backend loaded) only when that format is used; it is called as
            ``fn(graph, path, **options)`` with the model's traced inference pass (an
            :class:`unidl.export.graph.Graph`). Declared here, at discovery, so finding a
            format imports no framework.
        launcher: how ``unidl launch`` starts workers on this backend, as
            ``"module:function"``, imported only then; called as ``fn(nproc, argv,
            options)`` with the worker command line and a
            :class:`unidl.distribute.launch.LaunchOptions`, returning the exit status.
            Empty: ``unidl launch`` refuses the backend (it has no distributed engine).
    """

    name: str
    load: Callable[[], Backend]
    distributions: tuple[str, ...] = ()
    extra: str | None = None
    description: str = ""
    plugin: str = ""
    exporters: dict[str, str] = field(default_factory=dict)
    launcher: str = ""

    def installed_version(self) -> str | None:
        from importlib import metadata

        for dist in self.distributions:
            try:
                return metadata.version(dist)
            except metadata.PackageNotFoundError:
                continue
        return None


class Backend:
    """Base class of a loaded backend. Plugins subclass it and fill :attr:`kernels`.

    A kernel takes the op's canonical positional arguments, already converted to this
    backend's tensors and promoted to one dtype (see :mod:`unidl.dtypes`); it never needs to
    validate or promote. Ops without a kernel fall back to the spec's composite.

    Attributes:
        name: the backend's name.
        kernels: ``{op_name: callable}``; every primitive op must have one.
        native_autodiff: ``True`` when :meth:`vjp` uses the framework's autodiff; ``False``
            makes unidl use its own reverse-mode engine built from the spec's gradient rules.
        tensor_types: the exact classes of this backend's tensors.
    """

    name: str = "?"
    native_autodiff: bool = False
    tensor_types: tuple[type, ...] = ()
    #: capability: ``Model`` runs its train, test and predict steps through
    #: :meth:`compile_function` unless ``run_eagerly`` (TensorFlow: ``tf.function`` is its
    #: fast path); otherwise only with ``compile(jit_compile=True)``.
    compile_by_default: bool = False
    #: capability: :meth:`compile_function` runs the step's Python only while tracing, so a
    #: value drawn on the host inside it (deterministic mode's dropout masks) would be
    #: frozen into the compiled step; ``Model`` then runs training steps eagerly in
    #: deterministic mode.
    compile_traces: bool = False

    def __init__(self) -> None:
        self.kernels: dict[str, Callable] = {}
        #: fused optimizer updates by name ("adam", "sgd"), see unidl.optimizers.base
        self.optimizer_kernels: dict[str, Callable] = {}
        #: for backends differentiated by unidl's engine: gradient kernels by op name,
        #: ``fn(slots, g, out, *args)`` -> one cotangent per tensor input (None where not
        #: needed: only the inputs in ``slots`` are), or None to use the spec's rule. Used on
        #: first-order backward passes; the conformance suite checks them against the spec's
        #: rules and finite differences.
        self.grad_kernels: dict[str, Callable] = {}
        self.missing: list[str] = []

    # -- identity ---------------------------------------------------------------------------
    def version(self) -> str:
        return "unknown"

    def devices(self) -> list[str]:
        """Every device this backend can run on, as unidl device names (``cpu``, ``cuda:0``)."""
        return ["cpu"]

    def default_device(self) -> str:
        return self.devices()[0]

    # -- tensors ----------------------------------------------------------------------------
    def convert(self, value, dtype: str | None = None):
        """``value`` (native tensor, NumPy array, list or scalar) as a native tensor on the
        current device. ``dtype`` None keeps an array's dtype and gives Python floats the
        default float, Python ints the default int."""
        raise NotImplementedError

    def to_numpy(self, x) -> np.ndarray:
        raise NotImplementedError

    def dtype_of(self, x) -> str:
        raise NotImplementedError

    def shape_of(self, x) -> tuple:
        return tuple(x.shape)

    def cast(self, x, dtype: str):
        raise NotImplementedError

    def native_dtype(self, dtype: str):
        raise NotImplementedError

    def is_tensor(self, x) -> bool:
        return isinstance(x, self.tensor_types)

    # -- devices ----------------------------------------------------------------------------
    def device_scope(self, device: str):
        """A context manager placing new tensors on ``device``."""
        return contextlib.nullcontext()

    def device_of(self, x) -> str:
        return "cpu"

    def to_device(self, x, device: str):
        return x

    # -- autodiff (native backends) ---------------------------------------------------------
    def vjp(self, fn, primals: list, create_graph: bool = False):
        """Run ``fn(*primals)`` recording gradients; return ``(outputs_flat, vjp_fn)``.

        ``vjp_fn(cotangents_flat)`` returns one gradient per primal (``None`` where the output
        does not depend on it). Only used when :attr:`native_autodiff` is true.
        """
        raise NotImplementedError

    # -- randomness -------------------------------------------------------------------------
    def seed(self, seed: int) -> None:
        """Seed the framework's own generator (the one behind ``dropout`` with ``seed=None``),
        so that :func:`unidl.random.set_seed` makes its draws repeat. Called for every loaded
        backend by ``set_seed`` and for a backend that loads after it."""

    def set_deterministic(self, enabled: bool) -> None:
        """Follow :func:`unidl.random.set_deterministic`: ask the framework for deterministic
        algorithms where it has such a mode (PyTorch)."""

    # -- variables ----------------------------------------------------------------------------
    def new_variable(self, value, trainable: bool, name: str | None):
        """Native storage for a :class:`unidl.Variable`; default: the tensor itself."""
        return value

    def read_variable(self, storage):
        return storage

    def assign_variable(self, storage, value):
        """Assign ``value`` in place where possible; return the (possibly new) storage."""
        return value

    def add_to_variable(self, storage, delta):
        """``storage + delta`` assigned to the storage (a metric's running sums, every step):
        in place where the framework can, recording no gradient. ``delta`` may be a Python
        float or an integer count (converted to the storage's dtype). Returns the (possibly
        new) storage. Default: a read, an ``add`` and :meth:`assign_variable`."""
        return self.assign_variable(storage, self.table.add(self.read_variable(storage), delta))

    # -- execution ----------------------------------------------------------------------------
    def compile_function(self, fn, jit: bool = False):
        """The framework's fast path for a whole step (``tf.function``, ``torch.compile``)."""
        return fn

    def is_tracing(self) -> bool:
        """Whether ops run now are being traced into a graph (inside :meth:`compile_function`'s
        trace): their tensors are symbolic, and a value drawn on the host now would be frozen
        into every call of the compiled function. Layers that draw randomness on the host
        (Dropout with a seed, the augmentation layers) then use the backend's generator."""
        return False

    def distributed_engine(self, options):
        """capability: data-parallel training. An object with the methods of
        :class:`unidl.distribute.engine.Engine` for this process's rank (the process group
        joined as ``options`` say: a :class:`unidl.distribute.engine.EngineOptions`), or
        None when the backend has no distributed engine (the default).
        :class:`unidl.distribute.DataParallel` asks for it once."""
        return None

    def inference_function(self, fn):
        """``fn`` wrapped to record no gradients (``Model``'s evaluation and prediction steps:
        nothing there is differentiated). Default: ``fn`` itself."""
        return fn

    def strict_numerics(self):
        """A context manager turning off reduced-precision modes (TF32 matmul, ...) so results
        can be compared with a float64 reference; used by the conformance suite."""
        return contextlib.nullcontext()

    def synchronize(self) -> None:
        """Wait for queued device work (for timing)."""

    def fresh_table_hook(self, table) -> None:  # pragma: no cover - optional
        """Called after the kernel table is bound, for backends that want to adjust it."""
