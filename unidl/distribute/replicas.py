"""What ``Model`` does with a :class:`~unidl.distribute.DataParallel` strategy: start every
worker from rank 0's weights, keep the non-trainable state (BatchNormalization's moving
statistics) equal, reduce the metrics, and give each worker its part of every batch."""

from __future__ import annotations

import math

import numpy as np

from unidl import ops

__all__ = ["broadcast_weights", "average_state", "reduce_metrics", "shard_rows",
           "ShardedAdapter"]


def broadcast_weights(model, engine) -> None:
    """Every worker's weights become rank 0's (a sum of rank 0's values and zeros)."""
    variables = list(model.weights)
    if engine.world_size < 2 or not variables:
        return
    keep = 1.0 if engine.rank == 0 else 0.0
    values = [ops.multiply(v.value, ops.cast(keep, v.dtype)) if _is_float(v)
              else v.value for v in variables]
    floats = [i for i, v in enumerate(variables) if _is_float(v)]
    reduced = engine.all_reduce([values[i] for i in floats], "sum")
    for i, value in zip(floats, reduced):
        variables[i].assign(value)


def average_state(model, engine) -> None:
    """The float non-trainable weights (moving statistics) averaged over the workers after
    a train step, as ``tf.distribute`` aggregates them (MEAN)."""
    variables = [v for v in model.non_trainable_weights if _is_float(v)]
    if engine.world_size < 2 or not variables:
        return
    for v, value in zip(variables, engine.all_reduce([v.value for v in variables], "mean")):
        v.assign(value)


def reduce_metrics(metrics, engine) -> None:
    """Every metric's state summed over the workers, in place (at the end of an epoch or an
    evaluation: the results are then the whole data's)."""
    variables = [v for m in metrics for v in m.variables]
    if engine.world_size < 2 or not variables:
        return
    for v, value in zip(variables, engine.all_reduce([v.value for v in variables], "sum")):
        v.assign(value)


def shard_rows(n: int, rank: int, world: int) -> slice:
    """The rows of a global batch of ``n`` that worker ``rank`` of ``world`` takes:
    contiguous parts whose sizes differ by at most one (the first ``n % world`` are longer).

    Example:
        >>> [shard_rows(10, r, 4) for r in range(4)]
        [slice(0, 3, None), slice(3, 6, None), slice(6, 8, None), slice(8, 10, None)]
    """
    base, extra = divmod(n, world)
    start = rank * base + min(rank, extra)
    return slice(start, start + base + (1 if rank < extra else 0))


def _is_float(v) -> bool:
    from unidl import dtypes

    return dtypes.is_float(v.dtype)


class ShardedAdapter:
    """An adapter (:mod:`unidl.data.adapters`) whose batches are this worker's rows of the
    wrapped adapter's (global) batches. Every worker reads the same global batches (the
    same seed shuffles them the same way), so ``world`` workers together see each batch
    once. A global batch whose size is not a multiple of ``world`` is padded by repeating
    its first rows, as ``DistributedSampler`` pads the data: every worker gets the same
    number of samples, so the mean of the workers' gradients is the global batch's, and at
    most ``world - 1`` samples count twice in that batch."""

    def __init__(self, adapter, rank: int, world: int):
        self.adapter, self.rank, self.world = adapter, rank, world

    def __getattr__(self, name):  # steps, exhausted, ...
        return getattr(self.adapter, name)

    def epoch(self):
        from unidl import tree

        for x, y, w in self.adapter.epoch():
            n = ops.shape(tree.flatten(x)[0][0])[0]
            take = _rows_of(n, self.rank, self.world)
            yield tuple(None if part is None else tree.map_structure(take, part)
                        for part in (x, y, w))

    def close(self):
        self.adapter.close()


def _rows_of(n: int, rank: int, world: int):
    """A function taking worker ``rank``'s rows of a tensor with ``n`` rows (padded to a
    multiple of ``world`` by wrapping around)."""
    m = int(math.ceil(n / world) * world)
    rows = shard_rows(m, rank, world)
    if rows.stop <= n:
        return lambda t: t[rows]
    index = np.arange(rows.start, rows.stop) % n
    return lambda t: ops.take(t, ops.convert_to_tensor(index), axis=0)
