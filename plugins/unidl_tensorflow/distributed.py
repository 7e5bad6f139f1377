"""The TensorFlow backend's distributed engine: ``tf.distribute.MultiWorkerMirroredStrategy``
over the cluster in ``TF_CONFIG`` (one CPU or GPU replica per worker), with TensorFlow's
collective ops (``CollectiveReduceV2``, over gRPC between the workers).

When the strategy is made: TensorFlow configures collective ops only before its eager
context is initialized ("Collective ops must be configured at program startup"), and the
backend makes tensors as it loads. So when ``TF_CONFIG`` names more than one worker, the
backend makes the strategy as it loads (:func:`prepare_at_load`, before any tensor; this
joins the cluster and starts this worker's gRPC server), and
:meth:`TensorFlowBackend.distributed_engine` hands it out. A script without ``TF_CONFIG``
(or with a one-worker cluster) starts no server. If the strategy could not be made (the
script used TensorFlow before unidl's backend loaded, a port in use, ...), the error is
kept and ``DataParallel`` raises it as :class:`unidl.errors.DistributedError`.

Collectives: inside the train step (which :meth:`TensorFlowEngine.replica_step` runs with
``strategy.run``, in the strategy's replica context, both inside the ``tf.function`` the
backend compiles and eagerly) :meth:`TensorFlowEngine.all_reduce` is the replica context's
``all_reduce``, which is differentiable (synchronized BatchNormalization). Outside it
(broadcasting the initial weights, reducing the metrics at the end of an epoch, a barrier)
the same all-reduce runs in a cached ``tf.function`` over ``strategy.run``.
:meth:`TensorFlowEngine.reduce_gradients` is one ``all_reduce`` of the whole list, which the
strategy packs into chunks of ``bucket_bytes`` (``CommunicationOptions.bytes_per_pack``).
Every collective carries ``CommunicationOptions(timeout_seconds=timeout)``: when a worker
dies, the others' collectives fail within the timeout (DeadlineExceeded, Unavailable, ...)
and :class:`~unidl.errors.DistributedError` is raised naming the rank, the world, what was
reduced and the timeout (errors of a compiled step surface when the backend's compiled
function is called: ``_Dispatch`` converts them with :func:`collective_failure`).

Scope: :meth:`TensorFlowEngine.scope` does not enter ``strategy.scope()``. Inside it,
``tf.Variable`` would make ``MirroredVariable``\\ s, and unidl's optimizers and
BatchNormalization assign their variables in the replica context, which a
``MirroredVariable`` without an aggregation refuses. unidl's variables stay plain
``tf.Variable``\\ s: every worker starts from rank 0's values (the model broadcasts them)
and applies the same averaged gradients, which is what a mirrored variable with one replica
per worker amounts to.
"""

from __future__ import annotations

import json
import os
import re
import threading

from unidl.distribute.engine import Engine
from unidl.errors import DistributedError
from unidl_tensorflow.startup import import_tensorflow

tf = import_tensorflow()

__all__ = ["TensorFlowEngine", "prepare_at_load", "made_strategy", "collective_failure",
           "local_device_prefix"]

_lock = threading.Lock()
_made: dict = {}  # "strategy" or "error" (a message), set by prepare_at_load
_live: list = []  # engines with more than one worker (for collective_failure)

# what a collective raises when a peer died or stopped answering
_FAILURES = (tf.errors.DeadlineExceededError, tf.errors.UnavailableError,
             tf.errors.CancelledError, tf.errors.AbortedError,
             tf.errors.FailedPreconditionError, tf.errors.InternalError,
             tf.errors.UnknownError)


def _cluster_workers(environ=None):
    """``(workers, index)`` from ``TF_CONFIG``, or None without a worker cluster."""
    env = os.environ if environ is None else environ
    text = env.get("TF_CONFIG")
    if not text:
        return None
    try:
        config = json.loads(text)
    except ValueError:
        return None
    cluster = config.get("cluster", {}) or {}
    count = sum(len(cluster.get(job, []) or []) for job in ("chief", "worker"))
    return count, config.get("task", {}) or {}


def prepare_at_load() -> None:
    """Make the ``MultiWorkerMirroredStrategy`` now if ``TF_CONFIG`` names more than one
    worker (called by the backend as it loads, before it makes any tensor). Failures are
    kept for :meth:`TensorFlowBackend.distributed_engine` to raise."""
    found = _cluster_workers()
    if found is None or found[0] < 2:
        return
    with _lock:
        if _made:
            return
        try:
            _configure_coordination()
            # (the timeout and pack size are given to every collective: see _options)
            _made["strategy"] = tf.distribute.MultiWorkerMirroredStrategy()
        except Exception as exc:
            task = found[1]
            hint = ""
            if "program startup" in str(exc) or "already" in str(exc):
                hint = (" TensorFlow was already initialized (a tensor was made before "
                        "unidl's tensorflow backend loaded); make no TensorFlow tensor "
                        "before the backend loads (import unidl and select the backend "
                        "first, e.g. UNIDL_BACKEND=tensorflow)")
            _made["error"] = (
                f"DataParallel on tensorflow: worker {task.get('index', '?')} of "
                f"{found[0]} (TF_CONFIG) could not start tf.distribute."
                f"MultiWorkerMirroredStrategy: {_first_line(exc)}.{hint}")


def _join_timeout() -> float:
    """Seconds the strategy waits at load for every worker of ``TF_CONFIG`` to start
    (``UNIDL_TF_JOIN_TIMEOUT``, default 300): then the backend's load fails instead of
    waiting forever (the collectives' own timeout is ``DataParallel(timeout=...)``, which is
    not known yet when the backend loads)."""
    try:
        return max(1.0, float(os.environ.get("UNIDL_TF_JOIN_TIMEOUT", "300")))
    except ValueError:
        return 300.0


def _configure_coordination() -> None:
    """TensorFlow's coordination service configured as ``MultiWorkerMirroredStrategy``
    configures it (the same leader and jobs), plus a registration timeout: without one, a
    worker whose peers never start waits forever, ignoring SIGTERM."""
    from tensorflow.python.distribute import collective_all_reduce_strategy as mwms
    from tensorflow.python.distribute import multi_worker_util
    from tensorflow.python.distribute.cluster_resolver import TFConfigClusterResolver
    from tensorflow.python.eager import context

    ctx = context.context()
    if ctx.coordination_service is not None:
        return
    spec = multi_worker_util.normalize_cluster_spec(TFConfigClusterResolver().cluster_spec())
    jobs = [mwms.coordination_config_pb2.CoordinatedJob(name=job, num_tasks=spec.num_tasks(job))
            for job in ("chief", "worker") if job in spec.jobs]
    ctx.configure_coordination_service(
        service_type="standalone", service_leader=multi_worker_util.coordination_leader(spec),
        coordinated_jobs=jobs, cluster_register_timeout_in_ms=int(_join_timeout() * 1000))


def made_strategy():
    """The strategy made at load, or None; raises :class:`DistributedError` if making it
    failed."""
    if "error" in _made:
        raise DistributedError(_made["error"])
    return _made.get("strategy")


def local_device_prefix():
    """``"/job:worker/replica:0/task:i/"`` when this process is a worker of the strategy
    made at load (TensorFlow then lists the other workers' devices too), else None."""
    strategy = _made.get("strategy")
    if strategy is None:
        return None
    resolver = strategy.cluster_resolver
    return f"/job:{resolver.task_type}/replica:0/task:{resolver.task_id}/"


class TensorFlowEngine(Engine):
    """This worker's place in the ``MultiWorkerMirroredStrategy`` made at load (or a group of
    one: collectives are identities)."""

    def __init__(self, options, strategy=None):
        self.rank, self.world_size = options.rank, options.world_size
        self.timeout = options.timeout
        self.bucket_bytes = max(1, options.bucket_bytes)
        self.strategy = strategy
        self.description = "one process (no tf.distribute strategy)" if self.world_size < 2 \
            else f"tf.distribute.MultiWorkerMirroredStrategy ({self.world_size} workers)"
        self._functions = {}
        if self.world_size < 2:
            return
        if strategy is None:
            raise DistributedError(
                f"DataParallel on tensorflow: rank {self.rank} of {self.world_size} needs "
                "TF_CONFIG naming the cluster's workers, set before the backend loads (one "
                "worker per process: {\"cluster\": {\"worker\": [\"host:port\", ...]}, "
                "\"task\": {\"type\": \"worker\", \"index\": i}}); start the script with "
                "`unidl launch --nproc N script.py`")
        replicas = strategy.num_replicas_in_sync
        task = strategy.cluster_resolver.task_id
        if replicas != self.world_size or task != self.rank:
            raise DistributedError(
                f"DataParallel on tensorflow: the launcher says rank {self.rank} of "
                f"{self.world_size}, but the strategy from TF_CONFIG has task {task} and "
                f"{replicas} replicas (one replica per worker is supported: one CPU or one "
                "GPU per process)")
        self._options = tf.distribute.experimental.CommunicationOptions(
            bytes_per_pack=self.bucket_bytes, timeout_seconds=self.timeout)
        _live.append(self)

    # -- collectives ------------------------------------------------------------------------
    def all_reduce(self, tensors, op="sum"):
        if self.world_size < 2:
            return list(tensors)
        if op not in ("sum", "mean"):
            raise ValueError(f"all_reduce: op must be 'sum' or 'mean', got {op!r}")
        return self._reduce(list(tensors), op, "an all-reduce")

    def reduce_gradients(self, grads):
        if self.world_size < 2:
            return list(grads)
        grads = list(grads)
        present = [i for i, g in enumerate(grads) if g is not None]
        out = list(grads)
        reduced = self._reduce([grads[i] for i in present], "mean", "the gradients")
        for i, g in zip(present, reduced):
            out[i] = g
        return out

    def _reduce(self, tensors, op, what):
        if not tensors:
            return []
        reduce_op = tf.distribute.ReduceOp.SUM if op == "sum" else tf.distribute.ReduceOp.MEAN
        if self._in_replica_context():
            # (differentiable; in a compiled step, failures surface when it is called)
            return self._guard(what, lambda: _replica_all_reduce(reduce_op, tensors,
                                                                 self._options))
        fn = self._functions.get(op)
        if fn is None:
            options = self._options

            def reduce_all(*values):
                def replica(*xs):
                    return _replica_all_reduce(reduce_op, list(xs), options)

                return self.strategy.run(replica, args=values)

            # (one trace per signature: known shapes let the strategy pack the values)
            fn = self._functions[op] = tf.function(reduce_all, autograph=False)
        tensors = [tf.convert_to_tensor(t) for t in tensors]
        return self._guard(what, lambda: list(fn(*tensors)))

    def _in_replica_context(self) -> bool:
        if not tf.distribute.has_strategy() or tf.distribute.in_cross_replica_context():
            return False
        ctx = tf.distribute.get_replica_context()
        return ctx is not None and ctx.strategy is self.strategy

    def replica_step(self, fn):
        if self.world_size < 2:
            return fn
        strategy = self.strategy

        def step(*args):
            if not tf.executing_eagerly():  # (tracing: failures surface at the call)
                return strategy.run(fn, args=args)
            return self._guard("a train step", lambda: strategy.run(fn, args=args))

        step.__wrapped__ = fn
        return step

    def _guard(self, what, fn):
        try:
            return fn()
        except DistributedError:
            raise
        except _FAILURES as exc:
            raise self.failure(what, exc) from None

    def failure(self, what, exc) -> DistributedError:
        return DistributedError(
            f"rank {self.rank} of {self.world_size}: {what} failed on {self.description}: "
            f"{_first_line(exc)}. Another worker probably stopped (it died or raised); "
            f"collectives wait at most {self.timeout:g} s (DataParallel(timeout=...))")

    def shutdown(self):
        if self in _live:
            _live.remove(self)


def _replica_all_reduce(reduce_op, tensors, options):
    """The replica context's all-reduce of ``tensors``. A graph tensor made outside the
    replica function (an argument of the compiled function) has no device, and the
    strategy reduces each value to its device: such tensors are copied (``tf.identity``)
    onto the replica's device first."""
    tensors = [t if getattr(t, "device", "") else tf.identity(t) for t in tensors]
    return list(tf.distribute.get_replica_context().all_reduce(reduce_op, tensors,
                                                               options=options))


def collective_failure(exc):
    """``exc`` (an error a compiled function raised) as a :class:`DistributedError` when it
    is a collective's failure in a distributed run, else None."""
    if not _live or not isinstance(exc, _FAILURES):
        return None
    text = str(exc)
    if not isinstance(exc, (tf.errors.DeadlineExceededError, tf.errors.UnavailableError)) \
            and "ollective" not in text:
        return None
    return _live[-1].failure("a compiled train step (its all-reduces)", exc)


def _first_line(exc) -> str:
    text = [line for line in str(exc).strip().splitlines() if line.strip()]
    line = re.sub(r"^(\{\{[^}]*\}\}\s*)+", "", text[0].strip()).rstrip(".") if text else ""
    return f"{type(exc).__name__}: {line}"
