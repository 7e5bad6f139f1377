"""``DataParallel``: the same model on every worker, each on its shard of every batch.

Example (single process: a group of one; ``unidl launch --nproc 2 script.py`` runs two):
    >>> import unidl
    >>> from unidl.distribute import DataParallel
    >>> with unidl.use_backend("torch"):  # doctest: +SKIP
    ...     strategy = DataParallel()
    ...     strategy.rank, strategy.world_size
    (0, 1)
"""

from __future__ import annotations

import contextlib
import threading

from unidl.distribute.engine import EngineOptions, world_from_env
from unidl.errors import DistributedError

__all__ = ["DataParallel", "get_strategy", "active_engine", "is_chief"]

_state = threading.local()


class DataParallel:
    """Data-parallel training on the current backend's own distributed runtime.

    ``fit`` and ``evaluate`` then give each worker its part of every batch (``batch_size``
    is the global batch: per-replica batch x replicas), average the gradients over the
    workers before every optimizer step, reduce the metrics over the workers at the end of
    each epoch, and broadcast rank 0's initial weights. Use it as ``with strategy.scope():``
    around building and compiling the model, or pass ``model.compile(...,
    distribution=strategy)``.

    Args:
        timeout: seconds a collective may wait for the other workers; a worker that died
            makes the others raise :class:`unidl.errors.DistributedError` within it.
        bucket_mb: size of the gradient buckets all-reduced together, in MiB.

    Raises:
        DistributedError: the backend has no distributed engine (NumPy), or the group could
            not be joined.
    """

    def __init__(self, timeout: float = 300.0, bucket_mb: float = 25.0):
        import unidl

        if not timeout or timeout <= 0:
            raise ValueError(f"DataParallel: timeout must be > 0 seconds, got {timeout!r}")
        be = unidl.current_backend()
        rank, world = world_from_env()
        if not 0 <= rank < world:
            raise DistributedError(f"DataParallel: rank {rank} is outside the world of "
                                   f"{world} workers (check RANK and WORLD_SIZE or TF_CONFIG)")
        options = EngineOptions(timeout=float(timeout), rank=rank, world_size=world,
                                bucket_bytes=int(bucket_mb * 2**20))
        engine = be.distributed_engine(options)
        if engine is None:
            raise DistributedError(
                f"DataParallel: the {be.name!r} backend has no distributed engine; data "
                "parallelism needs a backend that has one, such as torch (torch.distributed) "
                "or tensorflow (tf.distribute): set UNIDL_BACKEND=torch or tensorflow")
        self.engine = engine
        self.backend = be.name
        self.timeout = float(timeout)

    @property
    def rank(self) -> int:
        """This worker's index (0 is the chief: it writes checkpoints and logs)."""
        return self.engine.rank

    @property
    def world_size(self) -> int:
        """The number of workers (replicas)."""
        return self.engine.world_size

    num_replicas_in_sync = world_size

    @property
    def is_chief(self) -> bool:
        return self.engine.rank == 0

    @contextlib.contextmanager
    def scope(self):
        """Models compiled inside use this strategy; variables are created in the
        backend's distributed scope."""
        stack = _stack()
        stack.append(self)
        try:
            with self.engine.scope():
                yield self
        finally:
            stack.pop()

    def all_reduce(self, tensors, op: str = "sum"):
        """``op`` ("sum" or "mean") of each tensor over the workers (a list, or one
        tensor)."""
        if op not in ("sum", "mean"):
            raise ValueError(f"DataParallel.all_reduce: op must be 'sum' or 'mean', got {op!r}")
        single = not isinstance(tensors, (list, tuple))
        out = self.engine.all_reduce([tensors] if single else list(tensors), op)
        return out[0] if single else out

    def barrier(self) -> None:
        """Wait until every worker reaches this point (or fail within the timeout)."""
        from unidl import ops

        self.engine.all_reduce([ops.zeros(())], "sum")

    def __repr__(self):
        return (f"DataParallel(rank={self.rank}, world_size={self.world_size}, "
                f"engine={self.engine.description!r})")


def _stack() -> list:
    if not hasattr(_state, "stack"):
        _state.stack = []
    return _state.stack


def get_strategy():
    """The innermost :meth:`DataParallel.scope` entered on this thread, or None."""
    stack = _stack()
    return stack[-1] if stack else None


@contextlib.contextmanager
def running(strategy):
    """Mark ``strategy`` as the one whose step runs now (read by :func:`active_engine`)."""
    previous = getattr(_state, "running", None)
    _state.running = strategy
    try:
        yield
    finally:
        _state.running = previous


def active_engine():
    """The engine of the distributed step running now (or of the innermost scope) when it
    has more than one worker, else None: what synchronized BatchNormalization asks."""
    strategy = getattr(_state, "running", None) or get_strategy()
    if strategy is None or strategy.world_size < 2:
        return None
    return strategy.engine


def is_chief() -> bool:
    """Whether this process writes checkpoints and logs: rank 0 of the active strategy, or
    any process outside one."""
    strategy = getattr(_state, "running", None) or get_strategy()
    if strategy is not None:
        return strategy.is_chief
    return world_from_env()[0] == 0
