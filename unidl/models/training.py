"""The training loop: ``compile``, ``fit``, ``evaluate``, ``predict`` and the per-batch steps.

One train step is written once from ``unidl.value_and_grad`` and the optimizer; each
backend runs it on its fast path: ``tf.function`` on TensorFlow, eager PyTorch (or
``torch.compile`` with ``jit_compile=True``), plain NumPy with unidl's engine.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from unidl import dtypes as _dt
from unidl import ops, tree
from unidl.errors import UnidlError

__all__ = ["TrainingMixin"]


def _num_samples(data) -> int:
    leaves = tree.flatten(data)[0]
    if not leaves:
        raise ValueError("no input data")
    n = {len(np.asarray(x)) if not ops.is_tensor(x) else ops.shape(x)[0] for x in leaves}
    if len(n) != 1:
        raise ValueError(f"all inputs and targets must have the same number of samples; got {n}")
    return n.pop()


def _host(x):
    return ops.to_numpy(x) if ops.is_tensor(x) else np.asarray(x)


def _to_model_tensor(x, float_dtype):
    arr = np.asarray(x)
    if arr.dtype.kind == "f":
        return ops.convert_to_tensor(arr, float_dtype)
    if arr.dtype.kind in "iu":
        return ops.convert_to_tensor(arr)
    return ops.convert_to_tensor(arr)


class _Batches:
    """Host-side batching of NumPy-like data (shuffled with unidl's portable RNG)."""

    def __init__(self, x, y, sample_weight, batch_size, shuffle, float_dtype):
        self.x = tree.map_structure(_host, x)
        self.y = tree.map_structure(_host, y) if y is not None else None
        self.w = _host(sample_weight) if sample_weight is not None else None
        self.n = _num_samples(self.x)
        self.batch_size = int(batch_size or 32)
        self.shuffle = shuffle
        self.float_dtype = float_dtype

    def __len__(self):
        return math.ceil(self.n / self.batch_size)

    def epoch(self):
        from unidl import random as urandom

        order = urandom.permutation(self.n) if self.shuffle else None
        for start in range(0, self.n, self.batch_size):
            idx = order[start:start + self.batch_size] if order is not None else \
                slice(start, start + self.batch_size)
            def take(a, idx=idx):
                return _to_model_tensor(a[idx], self.float_dtype)

            xb = tree.map_structure(take, self.x)
            yb = tree.map_structure(take, self.y) if self.y is not None else None
            wb = take(self.w) if self.w is not None else None
            yield xb, yb, wb


def _split_validation(x, y, split):
    n = _num_samples(x)
    cut = int(n * (1.0 - split))
    if cut <= 0 or cut >= n:
        raise ValueError(f"validation_split={split} leaves no training or validation data")
    def first(a):
        return _host(a)[:cut]

    def last(a):
        return _host(a)[cut:]

    return (tree.map_structure(first, x), tree.map_structure(first, y),
            tree.map_structure(last, x), tree.map_structure(last, y))


class TrainingMixin:
    """``compile``/``fit``/``evaluate``/``predict`` for :class:`unidl.Model`."""

    def __init__(self):
        self.optimizer = None
        self.compiled_loss = None
        self.compiled_metrics = []
        self.stop_training = False
        self.history = None
        self.run_eagerly = False
        self.jit_compile = False
        self._loss_tracker = None
        self._steps = {}

    # -- compile ----------------------------------------------------------------------------
    def compile(self, optimizer="rmsprop", loss=None, metrics=None, loss_weights=None,
                jit_compile=False, run_eagerly=False, steps_per_execution=1):
        """Configure training.

        Args:
            optimizer: an optimizer or its name (``"adam"``).
            loss: a loss object, callable ``(y_true, y_pred)`` or name.
            metrics: list of metrics or names; ``"accuracy"`` follows the loss's convention.
            jit_compile: TensorFlow: XLA; PyTorch: ``torch.compile`` of the step.
            run_eagerly: do not compile the step (debugging).
        """
        from unidl import losses as _losses
        from unidl import metrics as _metrics
        from unidl import optimizers as _optimizers

        try:
            self.optimizer = _optimizers.get(optimizer)
        except ValueError as exc:
            raise ValueError(f"model {self.name!r}: {exc}") from None
        try:
            if isinstance(loss, (list, tuple)):
                self.compiled_loss = _MultiLoss([_losses.get(x) for x in loss], loss_weights)
            elif isinstance(loss, dict):
                raise ValueError("losses given as a dict per output are not supported; pass a "
                                 "list in the order of the model's outputs")
            else:
                self.compiled_loss = _losses.get(loss) if loss is not None else None
            self.compiled_metrics = [_metrics.get(m, loss=getattr(self.compiled_loss, "first",
                                                                  self.compiled_loss))
                                     for m in metrics or []]
        except ValueError as exc:
            raise ValueError(f"model {self.name!r}: {exc}") from None
        if isinstance(metrics, dict):
            raise ValueError("metrics given as a dict per output are not supported; pass a list")
        self._loss_tracker = _metrics.Mean(name="loss")
        self.jit_compile = jit_compile
        self.run_eagerly = run_eagerly
        self._steps = {}
        self.compiled = True

    def _require_compiled(self, what):
        if self.compiled_loss is None or self.optimizer is None:
            raise UnidlError(f"model {self.name!r}: call compile(optimizer, loss) before {what}")

    @property
    def metrics(self):
        return [self._loss_tracker] + list(self.compiled_metrics) \
            if getattr(self, "_loss_tracker", None) is not None else []

    @property
    def metrics_names(self):
        return [m.name for m in self.metrics]

    def reset_metrics(self):
        for m in self.metrics:
            m.reset_state()

    # -- loss -----------------------------------------------------------------------------
    def compute_loss(self, x, y, y_pred, sample_weight=None):
        """The compiled loss plus regularization losses (override for custom losses)."""
        loss = self.compiled_loss(y, y_pred, sample_weight=sample_weight)
        extra = self.losses
        if extra:
            loss = ops.add(loss, ops.cast(_sum(extra), ops.dtype(loss)))
        return loss

    # -- steps ----------------------------------------------------------------------------
    def _raw_train_step(self, x, y, w):
        import unidl

        variables = self.trainable_weights

        def loss_fn(_variables):
            y_pred = self(x, training=True)
            return self.compute_loss(x, y, y_pred, w), y_pred

        (loss, y_pred), grads = unidl.value_and_grad(loss_fn, has_aux=True)(variables)
        self.optimizer.apply(grads, variables)
        y_pred = tree.map_structure(ops.stop_gradient, y_pred)
        self._update_metrics(loss, y, y_pred, w)
        return loss

    def _raw_test_step(self, x, y, w):
        y_pred = self(x, training=False)
        loss = self.compute_loss(x, y, y_pred, w)
        self._update_metrics(loss, y, y_pred, w)
        return loss

    def _raw_predict_step(self, x):
        return self(x, training=False)

    def _raw_train_batch(self, x, y, w):
        """``train_on_batch``'s work as one step (one compiled call on TensorFlow): reset the
        metrics, train on the batch, return the metrics' results."""
        for m in self.metrics:
            m.reset_state()
        self._raw_train_step(x, y, w)
        return [m.result() for m in self.metrics]

    def _raw_test_batch(self, x, y, w):
        """``test_on_batch``'s work as one step (see :meth:`_raw_train_batch`)."""
        for m in self.metrics:
            m.reset_state()
        self._raw_test_step(x, y, w)
        return [m.result() for m in self.metrics]

    def _update_metrics(self, loss, y, y_pred, w):
        self._loss_tracker.update_state(loss)
        if self.compiled_metrics and isinstance(y_pred, (list, tuple)):
            y, y_pred = y[0], y_pred[0]  # metrics follow the first output
        for m in self.compiled_metrics:
            m.update_state(y, y_pred, sample_weight=w)

    def _step(self, kind):
        """The (compiled, where the backend has a fast path) step function for ``kind``."""
        import unidl
        from unidl import random as urandom

        be = unidl.current_backend()
        key = (kind, be.name)
        if key not in self._steps:
            raw = {"train": self._raw_train_step, "test": self._raw_test_step,
                   "predict": self._raw_predict_step, "train_batch": self._raw_train_batch,
                   "test_batch": self._raw_test_batch}[kind]
            fn = raw
            training = kind in ("train", "train_batch")
            # (host-drawn masks of deterministic mode would be frozen into a traced step)
            compile_ok = not self.run_eagerly and not (
                training and urandom.is_deterministic() and be.compile_traces)
            if compile_ok and (be.compile_by_default or self.jit_compile):
                try:
                    fn = _compiled(be, raw, kind, self.jit_compile)
                except Exception as exc:  # fall back to eager, say why
                    warnings.warn(f"could not compile the {kind} step on {be.name}: {exc}",
                                  stacklevel=3)
                    fn = raw
            if not training:
                fn = be.inference_function(fn)  # evaluation and prediction: no gradients
            self._steps[key] = fn
        return self._steps[key]

    def _ensure_built(self, x):
        if not self.built or not self.weights:
            self(x, training=False)
        if self.optimizer is not None and hasattr(self.optimizer, "build"):
            self.optimizer.build(self.trainable_weights)

    # -- public loops -----------------------------------------------------------------------
    def train_on_batch(self, x, y=None, sample_weight=None, return_dict=False):
        """One optimizer step on one batch; returns the logs (loss and metrics)."""
        self._require_compiled("train_on_batch")
        xb = tree.map_structure(lambda a: _to_model_tensor(_host(a), self.dtype), x)
        yb = tree.map_structure(lambda a: _to_model_tensor(_host(a), self.dtype), y)
        wb = _to_model_tensor(_host(sample_weight), self.dtype) \
            if sample_weight is not None else None
        self._ensure_built(xb)
        # reset the metrics, step, read the metrics: one call (one graph on TensorFlow)
        return self._logs(return_dict, self._step("train_batch")(xb, yb, wb))

    def test_on_batch(self, x, y=None, sample_weight=None, return_dict=False):
        """Loss and metrics on one batch, without updating weights."""
        self._require_compiled("test_on_batch")
        xb = tree.map_structure(lambda a: _to_model_tensor(_host(a), self.dtype), x)
        yb = tree.map_structure(lambda a: _to_model_tensor(_host(a), self.dtype), y)
        self._ensure_built(xb)
        return self._logs(return_dict, self._step("test_batch")(xb, yb, None))

    def _logs(self, return_dict=True, results=None):
        """The metrics' results (``results``: already computed, in :attr:`metrics` order)."""
        if results is None:
            results = [m.result() for m in self.metrics]
        logs = {m.name: float(ops.to_numpy(r)) for m, r in zip(self.metrics, results)}
        if return_dict:
            return logs
        values = list(logs.values())
        return values[0] if len(values) == 1 else values

    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None,
            validation_split=0.0, validation_data=None, shuffle=True, initial_epoch=0,
            sample_weight=None, steps_per_epoch=None, validation_batch_size=None):
        """Train for ``epochs`` over ``(x, y)`` in batches; returns a :class:`History`.

        ``validation_split`` holds out the last fraction of the data (before shuffling);
        ``validation_data`` is ``(x_val, y_val)``. ``verbose``: 0 silent, 1 progress bar,
        2 one line per epoch (``"auto"`` is 1).
        """
        from unidl.callbacks import CallbackList, History

        self._require_compiled("fit")
        if validation_data is None and validation_split:
            x, y, vx, vy = _split_validation(x, y, validation_split)
            validation_data = (vx, vy)
        data = _Batches(x, y, sample_weight, batch_size or 32, shuffle, self.dtype)
        verbose = 1 if verbose == "auto" else int(verbose)
        history = History()
        cbs = CallbackList(callbacks, model=self, history=history, verbose=verbose,
                           epochs=epochs, steps=len(data))
        self.stop_training = False
        step = None
        cbs.on_train_begin()
        for epoch in range(initial_epoch, epochs):
            self.reset_metrics()
            cbs.on_epoch_begin(epoch)
            for i, (xb, yb, wb) in enumerate(data.epoch()):
                if steps_per_epoch is not None and i >= steps_per_epoch:
                    break
                if step is None:
                    self._ensure_built(xb)
                    step = self._step("train")
                cbs.on_train_batch_begin(i)
                step(xb, yb, wb)
                cbs.on_train_batch_end(i, self._logs)
            logs = self._logs(return_dict=True)
            if validation_data is not None:
                vx, vy = validation_data[0], validation_data[1]
                val = self.evaluate(vx, vy, batch_size=validation_batch_size or batch_size,
                                    verbose=0, return_dict=True, _internal=True)
                logs.update({f"val_{k}": v for k, v in val.items()})
            cbs.on_epoch_end(epoch, logs)
            if self.stop_training:
                break
        cbs.on_train_end()
        self.history = history
        return history

    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", sample_weight=None,
                 return_dict=False, callbacks=None, _internal=False):
        """Loss and metrics over ``(x, y)``: ``[loss, *metrics]`` (a scalar if there are no
        metrics), or a dict with ``return_dict=True``."""
        from unidl.callbacks import CallbackList

        self._require_compiled("evaluate")
        data = _Batches(x, y, sample_weight, batch_size or 32, False, self.dtype)
        verbose = 1 if verbose == "auto" else int(verbose)
        cbs = CallbackList(callbacks, model=self, verbose=verbose if not _internal else 0,
                           steps=len(data), mode="test")
        self.reset_metrics()
        step = None
        cbs.on_test_begin()
        for i, (xb, yb, wb) in enumerate(data.epoch()):
            if step is None:
                self._ensure_built(xb)
                step = self._step("test")
            step(xb, yb, wb)
            cbs.on_test_batch_end(i, self._logs)
        logs = self._logs(return_dict=True)
        cbs.on_test_end(logs)
        return logs if return_dict else self._logs(return_dict=False)

    def predict(self, x, batch_size=None, verbose="auto", callbacks=None):
        """Outputs for ``x`` as NumPy arrays (batched; concatenated)."""
        data = _Batches(x, None, None, batch_size or 32, False, self.dtype)
        outs = []
        step = None
        for xb, _, _ in data.epoch():
            if step is None:
                self._ensure_built(xb)
                step = self._step("predict")
            outs.append(tree.map_structure(ops.to_numpy, step(xb)))
        if not outs:
            raise ValueError("predict got no data")
        leaves = [tree.flatten(o)[0] for o in outs]
        _, treedef = tree.flatten(outs[0])
        joined = [np.concatenate([b[k] for b in leaves], axis=0) for k in range(len(leaves[0]))]
        return tree.unflatten(treedef, joined)

    def __call__(self, inputs, *args, **kwargs):
        return super().__call__(inputs, *args, **kwargs)


class _MultiLoss:
    """One loss per model output, weighted and summed (``compile(loss=[...], loss_weights)``)."""

    def __init__(self, losses, weights=None):
        self.losses = losses
        self.weights = list(weights) if weights is not None else [1.0] * len(losses)
        if len(self.weights) != len(losses):
            raise ValueError(f"{len(losses)} losses but {len(self.weights)} loss_weights")
        self.first = losses[0]
        self.name = "loss"

    def __call__(self, y_true, y_pred, sample_weight=None):
        if not isinstance(y_pred, (list, tuple)) or len(y_pred) != len(self.losses):
            raise ValueError(f"{len(self.losses)} losses for a model with "
                             f"{len(y_pred) if isinstance(y_pred, (list, tuple)) else 1} "
                             "output(s)")
        total = None
        for loss, weight, yt, yp in zip(self.losses, self.weights, y_true, y_pred):
            term = ops.multiply(loss(yt, yp, sample_weight=sample_weight), weight)
            total = term if total is None else ops.add(total, term)
        return total


def _compiled(be, raw, kind, jit):
    """``raw`` compiled by the backend. A ``(x, y, w)`` step gets a second compiled variant
    without ``w`` for the common ``w=None`` (a ``tf.function`` called with a ``None`` argument
    takes ~0.1 ms longer to dispatch on a 2-core machine: 5% of a small MLP's step)."""
    if kind == "predict":
        return be.compile_function(raw, jit=jit)
    with_w = be.compile_function(raw, jit=jit)
    without_w = be.compile_function(lambda x, y: raw(x, y, None), jit=jit)

    def step(x, y, w):
        return without_w(x, y) if w is None else with_w(x, y, w)

    return step


def _sum(values):
    total = values[0]
    for v in values[1:]:
        total = ops.add(total, v)
    return total


def _is_float(x):
    return _dt.is_float(ops.dtype(x))
