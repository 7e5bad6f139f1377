"""What a backend's distributed engine provides (:meth:`Backend.distributed_engine`).

An engine is this process's membership in a group of ``world_size`` workers, joined through
the framework's own distributed runtime (``torch.distributed``, ``tf.distribute``). The core
uses only the methods below; everything collective goes through :meth:`Engine.all_reduce`.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

__all__ = ["Engine", "EngineOptions", "LocalEngine", "world_from_env"]


@dataclass(frozen=True)
class EngineOptions:
    """How to join the group.

    Attributes:
        timeout: seconds a collective (or joining the group) may wait for the other workers
            before failing with :class:`unidl.errors.DistributedError` (a worker that died).
        rank, world_size: this worker's place, from the launcher's environment
            (:func:`world_from_env`).
        bucket_bytes: gradients are all-reduced in buckets of about this many bytes.
    """

    timeout: float = 300.0
    rank: int = 0
    world_size: int = 1
    bucket_bytes: int = 25 * 2**20


class Engine:
    """Base of the backends' engines (and the single-process :class:`LocalEngine`).

    Attributes:
        rank: this worker's index, ``0 <= rank < world_size``.
        world_size: the number of workers (one replica each).
        description: what runs the collectives, for messages (``"torch.distributed
            (gloo)"``).
    """

    rank: int = 0
    world_size: int = 1
    description: str = "one process"

    def all_reduce(self, tensors: list, op: str = "sum") -> list:
        """The element-wise ``op`` (``"sum"`` or ``"mean"``) of each tensor over the
        workers, in the same order. Every worker must call it with the same shapes, in
        the same order. Inside a train step it is differentiable (the gradient of a sum is
        the sum of the cotangents), which synchronized BatchNormalization relies on."""
        return list(tensors)

    def reduce_gradients(self, grads: list) -> list:
        """The mean of ``grads`` over the workers, reduced in buckets (flattened groups of
        about :attr:`EngineOptions.bucket_bytes`); default: :meth:`all_reduce`."""
        return self.all_reduce(grads, "mean")

    def replica_step(self, fn):
        """``fn`` (a train step) wrapped to run where collectives can be issued (TensorFlow:
        in the strategy's replica context); default: ``fn``."""
        return fn

    def scope(self):
        """A context in which the model's variables are created (TensorFlow: the
        strategy's scope); default: nothing."""
        return contextlib.nullcontext()

    def shutdown(self) -> None:
        """Leave the group (at exit)."""


class LocalEngine(Engine):
    """A group of one (a script run without ``unidl launch``): collectives are identities."""

    def all_reduce(self, tensors, op="sum"):
        return list(tensors)


def world_from_env(environ=None) -> tuple[int, int]:
    """``(rank, world_size)`` set by ``unidl launch`` or ``torchrun`` (``RANK`` and
    ``WORLD_SIZE``), or read from TensorFlow's ``TF_CONFIG``; ``(0, 1)`` when none is set.

    Example:
        >>> world_from_env({"RANK": "1", "WORLD_SIZE": "2"})
        (1, 2)
        >>> world_from_env({})
        (0, 1)
    """
    import json

    env = os.environ if environ is None else environ
    if "WORLD_SIZE" in env:
        return int(env.get("RANK", 0)), int(env["WORLD_SIZE"])
    if "TF_CONFIG" in env:
        config = json.loads(env["TF_CONFIG"])
        workers = config.get("cluster", {}).get("worker", [])
        task = config.get("task", {})
        return int(task.get("index", 0)), max(1, len(workers))
    return 0, 1
