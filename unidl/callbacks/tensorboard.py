"""``TensorBoard``: scalars, weight histograms and the model's graph as TensorBoard event files.

The files are written by the ``tensorboard`` package's own writer
(``tensorboard.summary.writer.event_file_writer.EventFileWriter``, the one
``torch.utils.tensorboard`` uses) from its protos and summary helpers (``scalar_pb``,
``histogram_pb``, ``text_pb``): no framing or protobuf is written by hand, and TensorBoard
reads them as its own. ``tensorboard`` is an optional dependency
(``pip install "unidl[tensorboard]"``), imported when a :class:`TensorBoard` is created;
``import unidl`` does not import it. (``tensorboard`` opens its files through TensorFlow's
``tf.io.gfile`` when TensorFlow is installed, and through its own stub otherwise.)
"""

from __future__ import annotations

import os
import time
from types import SimpleNamespace

import numpy as np

from unidl.callbacks.base import Callback
from unidl.callbacks.core import get_learning_rate

__all__ = ["TensorBoard", "layer_graph"]

_INSTALL = ('the TensorBoard callback needs the tensorboard package, which is not installed: '
            'pip install "unidl[tensorboard]"')
_KERAS_ONLY = {"write_images": False, "write_steps_per_second": False, "profile_batch": 0,
               "embeddings_freq": 0, "embeddings_metadata": None}


def _tensorboard() -> SimpleNamespace:
    """The parts of ``tensorboard`` the callback uses (imported on first use), or an
    ImportError that says how to install it."""
    try:
        from tensorboard.compat.proto import (
            attr_value_pb2,
            event_pb2,
            graph_pb2,
            node_def_pb2,
            tensor_shape_pb2,
        )
        from tensorboard.plugins.histogram.summary_v2 import histogram_pb
        from tensorboard.plugins.scalar.summary_v2 import scalar_pb
        from tensorboard.plugins.text.summary_v2 import text_pb
        from tensorboard.summary.writer.event_file_writer import EventFileWriter
    except ImportError as exc:
        raise ImportError(f"{_INSTALL} ({exc})") from None
    return SimpleNamespace(attr=attr_value_pb2, event=event_pb2, graph=graph_pb2,
                           node=node_def_pb2, shape=tensor_shape_pb2, histogram_pb=histogram_pb,
                           scalar_pb=scalar_pb, text_pb=text_pb, EventFileWriter=EventFileWriter)


def _check_freq(update_freq):
    """``update_freq`` as ``"epoch"`` or a positive number of batches (``"batch"`` is 1)."""
    if update_freq == "epoch":
        return update_freq
    if update_freq == "batch":
        return 1
    if isinstance(update_freq, bool) or not isinstance(update_freq, (int, np.integer)) \
            or update_freq < 1:
        raise ValueError("TensorBoard: update_freq must be 'epoch', 'batch' or a positive "
                         f"number of batches, got {update_freq!r}")
    return int(update_freq)


class TensorBoard(Callback):
    """Write what ``fit`` does as TensorBoard event files: ``tensorboard --logdir log_dir``.

    As Keras 3, under ``log_dir``: ``train/`` gets ``epoch_loss``, ``epoch_<metric>`` and
    ``epoch_learning_rate`` each epoch (step: the epoch index), ``validation/`` gets the
    ``val_`` logs under the same names (``epoch_loss``...), so TensorBoard draws the train
    and validation curves on one chart. With ``update_freq="batch"`` (or ``N``: every N
    batches) ``train/`` also gets ``batch_loss``, ``batch_<metric>`` (step: the optimizer's
    iteration count, so a resumed run continues the curve). ``histogram_freq=N``: a
    histogram of every weight (``<layer>/<weight>/histogram``, finite values) every N
    epochs. ``write_graph``: when training starts (or after the first epoch, for a model
    that ``fit`` builds on its first batch), the model's layer graph as a
    ``GraphDef`` (Graphs tab: one node per layer call, its class as the op, edges between
    layer calls, output shapes and parameter counts as attributes) and ``model.summary()``
    as a text summary ``model_summary`` (Text tab). ``evaluate(..., callbacks=[tb])``
    writes ``evaluation_<name>_vs_iterations`` to ``validation/``.

    Reading the batch logs (``update_freq`` not ``"epoch"``) costs a host sync per batch;
    with the default nothing is read between epochs. Keras' ``write_images``,
    ``profile_batch`` and embeddings are not supported (a ValueError says so).

    Example:
        >>> import tempfile
        >>> import unidl
        >>> tb = unidl.callbacks.TensorBoard(tempfile.mkdtemp(), histogram_freq=1)
        >>> tb.update_freq
        'epoch'
    """

    chief_only = True  # (only rank 0 of data-parallel workers writes)

    def __init__(self, log_dir="logs", histogram_freq=0, write_graph=True, update_freq="epoch",
                 **keras_options):
        super().__init__()
        self._tb = _tensorboard()
        for name, value in keras_options.items():
            if name not in _KERAS_ONLY:
                raise TypeError(f"TensorBoard: unknown argument {name!r}")
            if value != _KERAS_ONLY[name]:
                raise ValueError(f"TensorBoard: {name}={value!r} is not supported by unidl "
                                 "(scalars, weight histograms and the model graph are)")
        if isinstance(histogram_freq, bool) or not isinstance(
                histogram_freq, (int, np.integer)) or histogram_freq < 0:
            raise ValueError("TensorBoard: histogram_freq must be an int >= 0 (0: no "
                             f"histograms), got {histogram_freq!r}")
        self.log_dir = os.fspath(log_dir)
        self.histogram_freq = int(histogram_freq)
        self.write_graph = bool(write_graph)
        self.update_freq = _check_freq(update_freq)
        self._writers: dict = {}
        self._in_fit = self._graph_due = False
        if self.update_freq != "epoch":  # (only then: a batch hook makes fit read the logs)
            self.on_train_batch_end = self._log_batch

    # -- writing ----------------------------------------------------------------------------
    def _writer(self, run: str):
        """The event-file writer of ``log_dir/run`` (``train`` or ``validation``), opened
        on first use."""
        if run not in self._writers:
            path = os.path.join(self.log_dir, run)
            os.makedirs(path, exist_ok=True)
            self._writers[run] = self._tb.EventFileWriter(path)
        return self._writers[run]

    def _write(self, run: str, step: int, summary=None, graph_def=None) -> None:
        """One event (a summary or a graph) at ``step`` in ``run``."""
        event = self._tb.event.Event(wall_time=time.time(), step=int(step))
        if summary is not None:
            event.summary.CopyFrom(summary)
        if graph_def is not None:
            event.graph_def = graph_def.SerializeToString()
        self._writer(run).add_event(event)

    def _scalars(self, run: str, step: int, values: dict, tag: str) -> None:
        """A scalar per ``values`` item, tagged ``tag.format(name)`` (array results, such as
        ``F1Score(average=None)``'s per-class values, are not scalars: left out)."""
        for name, value in values.items():
            if np.ndim(value) == 0:
                self._write(run, step, self._tb.scalar_pb(tag.format(name), float(value)))

    def _flush(self) -> None:
        """Write what the writers hold (each epoch: a reader sees it during training)."""
        for writer in self._writers.values():
            writer.flush()

    def _close(self) -> None:
        """Close the event files (the end of ``fit``); a later use opens new ones."""
        for writer in self._writers.values():
            writer.close()
        self._writers = {}

    # -- hooks ------------------------------------------------------------------------------
    def on_train_begin(self, logs=None):
        self._in_fit = True
        self._batch_start = None
        self._graph_due = self.write_graph
        if self._graph_due and self.model.built and self.model.weights:
            self._write_model()  # (else after the first epoch, once fit has built the model)
            self._flush()

    def on_train_end(self, logs=None):
        self._in_fit = False
        self._close()

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        train = {k: v for k, v in logs.items() if not k.startswith("val_")}
        val = {k[4:]: v for k, v in logs.items() if k.startswith("val_")}
        if getattr(self.model, "optimizer", None) is not None:
            train["learning_rate"] = get_learning_rate(self.model.optimizer)
        self._scalars("train", epoch, train, "epoch_{}")
        if val:
            self._scalars("validation", epoch, val, "epoch_{}")
        if self.histogram_freq and epoch % self.histogram_freq == 0:
            self._write_histograms(epoch)
        if self._graph_due:
            self._write_model()
        self._flush()

    def _iterations(self) -> int:
        """The optimizer's step count (a host read)."""
        return int(np.asarray(self.model.optimizer.iterations.numpy()))

    def _log_batch(self, batch, logs=None):
        """``on_train_batch_end`` when ``update_freq`` is a number of batches: ``batch_*``
        scalars whenever the optimizer's step count passes a multiple of it."""
        step = self._iterations()
        if self._batch_start is None:  # (the first call of this fit: steps before it)
            self._batch_start = step - (batch + 1)
            self._last_step = self._batch_start
        if step // self.update_freq > self._last_step // self.update_freq:
            self._scalars("train", step, logs or {}, "batch_{}")
        self._last_step = step

    def on_test_end(self, logs=None):
        """After ``evaluate(..., callbacks=[tb])``: its logs at the optimizer's step."""
        if self._in_fit or getattr(self.model, "optimizer", None) is None or not logs:
            return
        self._scalars("validation", self._iterations(), logs, "evaluation_{}_vs_iterations")
        self._close()

    # -- what is written --------------------------------------------------------------------
    def _write_histograms(self, epoch: int) -> None:
        """A histogram of each weight's finite values (tags unique per weight)."""
        seen: dict = {}
        for w in self.model.weights:
            name = str(w.name).replace(":", "_")
            seen[name] = seen.get(name, 0) + 1
            tag = name if seen[name] == 1 else f"{name}_{seen[name] - 1}"
            values = np.asarray(w.numpy(), dtype=np.float64).ravel()
            values = values[np.isfinite(values)]
            if values.size:
                self._write("train", epoch, self._tb.histogram_pb(f"{tag}/histogram", values))

    def _write_model(self) -> None:
        """The layer graph (a ``graph_def`` event) and ``model.summary()`` (text)."""
        tb, self._graph_due = self._tb, False
        graph = tb.graph.GraphDef()
        for name, op, inputs, shapes, params in layer_graph(self.model):
            node = tb.node.NodeDef(name=name, op=op, input=inputs)
            if shapes:
                node.attr["_output_shapes"].CopyFrom(tb.attr.AttrValue(
                    list=tb.attr.AttrValue.ListValue(shape=[_shape_proto(tb, s)
                                                            for s in shapes])))
            if params is not None:
                node.attr["params"].CopyFrom(tb.attr.AttrValue(i=params))
            graph.node.append(node)
        self._write("train", 0, graph_def=graph)
        lines: list[str] = []
        self.model.summary(print_fn=lines.append)
        text = "\n".join("    " + line for line in lines)  # (Markdown: a code block)
        self._write("train", 0, tb.text_pb("model_summary", text))


def _shape_proto(tb, shape):
    """A ``TensorShapeProto`` (``None`` dimensions as -1, TensorBoard's unknown size)."""
    dims = [tb.shape.TensorShapeProto.Dim(size=-1 if d is None else int(d))
            for d in (shape if isinstance(shape, (tuple, list)) else ())]
    return tb.shape.TensorShapeProto(dim=dims)


def _params(layer):
    """The number of weight values of a built layer (None before it is built)."""
    if not getattr(layer, "built", False):
        return None
    return int(sum(int(np.prod(w.shape, dtype=np.int64)) for w in layer.weights))


def _leaf_shapes(value):
    """The shapes of the tensors in an output structure (one tuple per tensor)."""
    from unidl import tree

    if value is None:
        return []
    if isinstance(value, tuple) and all(d is None or isinstance(d, int) for d in value):
        return [value]
    return [tuple(getattr(v, "shape", ())) for v in tree.flatten(value)[0]]


def layer_graph(model) -> list[tuple[str, str, list[str], list, int | None]]:
    """The model's layer graph for TensorBoard: ``(name, op, inputs, output shapes, params)``
    per node. A functional model gives one node per input and per layer call, with its
    edges; a Sequential model a chain from an ``input`` node; a subclassed model its layers
    (their calls are Python code, so no edges are known)."""
    graph = getattr(model, "_graph", None)
    if graph is not None:
        return _functional_graph(graph)
    layers = list(model.layers)
    if getattr(model, "_stack", None) is not None:
        spec = getattr(model, "_input_spec", None)
        shape = getattr(spec, "shape", None) or (layers[0]._batch_input_shape if layers
                                                 else None)
        out = [("input", "InputLayer", [], [tuple(shape)] if shape else [], None)]
        for layer in layers:
            shapes = _leaf_shapes(getattr(layer, "_last_output_shape", None))
            out.append((layer.name, type(layer).__name__, [out[-1][0]], shapes, _params(layer)))
        return out
    return [(layer.name, type(layer).__name__, [],
             _leaf_shapes(getattr(layer, "_last_output_shape", None)), _params(layer))
            for layer in layers]


def _functional_graph(graph) -> list:
    """:func:`layer_graph` of a :class:`~unidl.models.functional.FunctionalGraph`."""
    from unidl import tree
    from unidl.layers.base import SymbolicTensor

    names: dict = {}  # id(symbolic tensor) -> the node that makes it
    out, used = [], set()
    for k, sym in enumerate(graph.input_leaves):
        name = _unique(sym.name or f"input_{k}", used)
        names[id(sym)] = name
        out.append((name, "InputLayer", [], [sym.shape], None))
    for node in graph.nodes:
        name = _unique(node.layer.name, used)
        leaves = tree.flatten((node.inputs, list(node.args), dict(node.kwargs)))[0]
        inputs = list(dict.fromkeys(names[id(s)] for s in leaves
                                    if isinstance(s, SymbolicTensor) and id(s) in names))
        for sym in node.outputs:
            names[id(sym)] = name
        out.append((name, type(node.layer).__name__, inputs, [s.shape for s in node.outputs],
                    _params(node.layer)))
    return out


def _unique(name: str, used: set) -> str:
    """``name``, or ``name_1``, ``name_2``... for a layer called more than once."""
    candidate, k = name, 0
    while candidate in used:
        k += 1
        candidate = f"{name}_{k}"
    used.add(candidate)
    return candidate
