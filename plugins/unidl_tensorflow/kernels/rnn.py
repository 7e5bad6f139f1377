"""TensorFlow recurrent kernels: ``lstm`` and ``gru``, the spec's composites run as several
independent chains over parts of the batch.

A recurrent layer's time loop is a chain of small ops, each waiting for the one before, so a
graph of one chain keeps about one core busy: TensorFlow runs each small elementwise op on
one thread. The rows of a batch never interact in an LSTM or a GRU, so in a graph on the CPU
these kernels split the batch into as many parts as TensorFlow runs ops at once (its
inter-op threads, by default the cores), keeping at least :data:`MIN_ROWS` rows in a part,
and run the spec's composite on each part. TensorFlow's executor runs the chains side by
side. Measured on 2 cores (LSTM(128), 50 steps of 32 features, batch 128, ``ops.lstm`` in a
``tf.function``): forward and gradients 38.2-38.6 -> 25.3-26.8 ms, forward 15.7-15.9 ->
8.9-9.8 ms. In raw TensorFlow four parts of 32 rows were slower than two (33.3 against 27.1
ms; one chain 39.5). Each row's values are computed by the same ops as in one chain.

Eagerly, and on a GPU (where one op already fills the device), the composite runs whole.
"""

from __future__ import annotations

import os

import tensorflow as tf

from unidl.spec.core import get_spec

#: the fewest batch rows in one chain: smaller matmuls lose more to their fixed cost than
#: the extra chain gains
MIN_ROWS = 32


def _parallel_ops() -> int:
    """How many ops TensorFlow runs at once on the CPU: its inter-op threads (the usable
    cores when left at 0, TensorFlow's default)."""
    threads = tf.config.threading.get_inter_op_parallelism_threads()
    if threads > 0:
        return threads
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def _on_cpu(x) -> bool:
    device = x.device.upper()
    if device:
        return "CPU" in device
    return not tf.config.list_logical_devices("GPU")


def batch_parts(x) -> list:
    """The row counts of the parts the batch of ``x`` is split into: one part eagerly, off
    the CPU, or where the batch size is unknown while tracing."""
    batch = x.shape[0]
    if tf.executing_eagerly() or batch is None or not _on_cpu(x):
        return [batch]
    parts = max(1, min(_parallel_ops(), batch // MIN_ROWS))
    size, extra = divmod(batch, parts)
    return [size + (i < extra) for i in range(parts)]


def _by_parts(op: str, n_states: int):
    """The kernel of ``op``, whose arguments are ``x``, ``n_states`` states (batch, units),
    then weights and options shared by every part."""
    composite = get_spec(op).impl

    def kernel(x, *states_and_weights, **options):
        parts = batch_parts(x)
        if len(parts) == 1:
            return composite(x, *states_and_weights, **options)
        states, weights = states_and_weights[:n_states], states_and_weights[n_states:]
        pieces = zip(tf.split(x, parts), *(tf.split(s, parts) for s in states))
        outs = [composite(*piece, *weights, **options) for piece in pieces]
        return tuple(tf.concat(list(results), axis=0) for results in zip(*outs))

    kernel.__name__ = op
    return kernel


KERNELS = {
    "lstm": _by_parts("lstm", n_states=2),  # h0, c0
    "gru": _by_parts("gru", n_states=1),  # h0
}
