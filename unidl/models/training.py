"""The training loop: ``compile``, ``fit``, ``evaluate``, ``predict`` and the per-batch steps.

One train step is written once from ``unidl.value_and_grad`` and the optimizer; each
backend runs it on its fast path: ``tf.function`` on TensorFlow, eager PyTorch (or
``torch.compile`` with ``jit_compile=True``), plain NumPy with unidl's engine.
"""

from __future__ import annotations

import contextlib
import math
import warnings

import numpy as np

from unidl import dtypes as _dt
from unidl import ops, tree
from unidl.data import adapters
from unidl.data.adapters import model_tensors as _model_tensors
from unidl.data.checks import host_data as _host_data
from unidl.errors import UnidlError

__all__ = ["TrainingMixin"]


def _groups(batches, n):
    """``(first index, last index, [batch, ...])`` for groups of ``n`` consecutive batches
    (the last group may be shorter)."""
    group, first = [], 0
    for i, batch in enumerate(batches):
        if not group:
            first = i
        group.append(batch)
        if len(group) == n:
            yield first, i, group
            group = []
    if group:
        yield first, first + len(group) - 1, group


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
        self.steps_per_execution = 1
        self._loss_tracker = None
        self._steps = {}
        self._distribution = None  # (a DataParallel strategy, see compile)
        self._replicas = None  # (its engine when it has several workers)
        self._replicas_synced = False

    # -- compile ----------------------------------------------------------------------------
    def compile(self, optimizer="rmsprop", loss=None, metrics=None, loss_weights=None,
                jit_compile=False, run_eagerly=False, steps_per_execution=1, distribution=None):
        """Configure training.

        Args:
            optimizer: an optimizer or its name (``"adam"``).
            loss: a loss object, callable ``(y_true, y_pred)`` or name.
            metrics: list of metrics or names; ``"accuracy"`` follows the loss's convention.
            jit_compile: TensorFlow: XLA; PyTorch: ``torch.compile`` of the step.
            run_eagerly: do not compile the step (debugging).
            steps_per_execution: batches per call of the train/test step in ``fit`` and
                ``evaluate`` (one compiled call where the step is compiled: TensorFlow, or
                ``jit_compile=True``; a loop of eager steps elsewhere). Callbacks' batch
                hooks and the progress bar run once per call: ``on_*_batch_begin`` with the
                index of the group's first batch, ``on_*_batch_end`` with its last; the last
                group of an epoch may be shorter.
            distribution: a :class:`unidl.distribute.DataParallel` strategy (default: the
                one whose ``scope()`` is entered, if any): ``fit`` and ``evaluate`` then
                shard every batch over its workers and average the gradients; see
                ``docs/distributed.md``.
        """
        from unidl import losses as _losses
        from unidl import metrics as _metrics
        from unidl import optimizers as _optimizers

        if isinstance(steps_per_execution, bool) or not isinstance(
                steps_per_execution, (int, np.integer)) or steps_per_execution < 1:
            raise ValueError(f"model {self.name!r}: steps_per_execution must be a positive "
                             f"int, got {steps_per_execution!r}")
        try:
            self.optimizer = _optimizers.get(optimizer)
        except ValueError as exc:
            raise ValueError(f"model {self.name!r}: {exc}") from None
        from unidl.mixed_precision.loss_scale import wrap_for  # (float16: loss scaling)

        self.optimizer = wrap_for(self, self.optimizer)
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
        # (as given: what model.save stores, so a loaded model compiles the same way)
        self._compile_args = {"loss": loss, "metrics": metrics, "loss_weights": loss_weights,
                              "jit_compile": jit_compile, "run_eagerly": run_eagerly,
                              "steps_per_execution": int(steps_per_execution)}
        self.jit_compile = jit_compile
        self.run_eagerly = run_eagerly
        self.steps_per_execution = int(steps_per_execution)
        self._steps = {}
        self._set_distribution(distribution)
        self.compiled = True

    def _set_distribution(self, distribution):
        from unidl.distribute import DataParallel, get_strategy

        distribution = distribution if distribution is not None else get_strategy()
        if distribution is not None and not isinstance(distribution, DataParallel):
            raise TypeError(f"model {self.name!r}: distribution must be a unidl.distribute."
                            f"DataParallel, got {type(distribution).__name__}")
        self._distribution = distribution
        self._replicas = distribution.engine if distribution is not None and \
            distribution.world_size > 1 else None

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
        from unidl.autodiff.api import variables_value_and_grad

        variables = self.trainable_weights

        def loss_fn():
            y_pred = self(x, training=True)
            return self.compute_loss(x, y, y_pred, w), y_pred

        scaled = getattr(self.optimizer, "scaled_loss_fn", None)  # (a LossScaleOptimizer)
        if scaled is None:
            (loss, y_pred), grads = variables_value_and_grad(loss_fn, variables)
        else:  # (differentiates the scaled loss, reports the loss)
            (_, (loss, y_pred)), grads = variables_value_and_grad(scaled(loss_fn), variables)
        if self._replicas is not None:  # (the mean over the workers, in buckets)
            grads = self._replicas.reduce_gradients(grads)
        self.optimizer.apply(grads, variables)
        if self._replicas is not None:
            from unidl.distribute.replicas import average_state

            average_state(self, self._replicas)
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
            training = kind in ("train", "train_batch")
            if training and self._replicas is not None:
                raw = _replicated(self._distribution, raw)
            fn = raw
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
        if self._replicas is not None and not self._replicas_synced:
            from unidl.distribute.replicas import broadcast_weights

            broadcast_weights(self, self._replicas)  # (every worker starts from rank 0's)
            self._replicas_synced = True

    def _grouped_step(self, kind, batch):
        """A callable running a list of ``(x, y, w)`` batches through the ``kind`` ("train"
        or "test") step (``steps_per_execution``). Where :meth:`_step` compiled the step with
        the backend's ``compile_function`` (``tf.function`` on TensorFlow; ``torch.compile``
        with ``jit_compile=True``), the whole group runs in ONE compiled call: a function of
        the group's tensors whose loop unrolls while tracing (one trace per group size, so
        the shorter last group may trace once more). Where the step is ``raw`` itself (or
        ``raw`` wrapped to record no gradients), it runs in a loop. ``batch`` is one batch
        of the fit, for its structure."""
        import inspect

        import unidl

        be = unidl.current_backend()
        leaves, treedef = tree.flatten(batch)
        key = ("grouped", kind, be.name, repr(treedef))
        if key not in self._steps:
            step = self._step(kind)
            raw = {"train": self._raw_train_step, "test": self._raw_test_step}[kind]
            if inspect.unwrap(step) == raw or self._replicas is not None:
                self._steps[key] = _looped(step)
            else:
                self._steps[key] = _compiled_group(be, raw, kind == "train", treedef,
                                                   len(leaves), self.jit_compile)
        return self._steps[key]

    def _run_steps(self, kind, batches, on_begin, on_end, step=None, stoppable=False):
        """Run the ``kind`` step over ``batches``, ``steps_per_execution`` batches per call,
        calling ``on_begin(first index)`` and ``on_end(last index, self._logs)`` around each
        call; stop early when ``stoppable`` and ``self.stop_training``. Returns the step (to
        reuse) and the index of the last batch run (-1 for none)."""
        n, logs, last = self.steps_per_execution, self._logs, -1
        if n == 1:
            for last, (xb, yb, wb) in enumerate(batches):
                if step is None:
                    self._ensure_built(xb)
                    step = self._step(kind)
                on_begin(last)
                step(xb, yb, wb)
                on_end(last, logs)
                if stoppable and self.stop_training:
                    break
            return step, last
        for first, last, group in _groups(batches, n):
            if step is None:
                self._ensure_built(group[0][0])
                step = self._grouped_step(kind, group[0])
            on_begin(first)
            step(group)
            on_end(last, logs)
            if stoppable and self.stop_training:
                break
        return step, last

    # -- public loops -----------------------------------------------------------------------
    def train_on_batch(self, x, y=None, sample_weight=None, return_dict=False):
        """One optimizer step on one batch; returns the logs (loss and metrics)."""
        self._require_compiled("train_on_batch")
        data = _host_data("train_on_batch", x=x, y=y, sample_weight=sample_weight)
        xb, yb, wb = (_model_tensors(data[k], self.dtype) for k in ("x", "y", "sample_weight"))
        self._ensure_built(xb)
        # reset the metrics, step, read the metrics: one call (one graph on TensorFlow)
        return self._logs(return_dict, self._step("train_batch")(xb, yb, wb))

    def test_on_batch(self, x, y=None, sample_weight=None, return_dict=False):
        """Loss and metrics on one batch, without updating weights."""
        self._require_compiled("test_on_batch")
        data = _host_data("test_on_batch", x=x, y=y, sample_weight=sample_weight)
        xb, yb, wb = (_model_tensors(data[k], self.dtype) for k in ("x", "y", "sample_weight"))
        self._ensure_built(xb)
        return self._logs(return_dict, self._step("test_batch")(xb, yb, wb))

    def predict_on_batch(self, x):
        """Outputs for one batch ``x`` as NumPy arrays: the prediction step once, with no
        batching, callbacks or concatenation (as Keras's ``predict_on_batch``)."""
        data = _host_data("predict_on_batch", x=x)
        xb = _model_tensors(data["x"], self.dtype)
        self._ensure_built(xb)
        return _host(self._step("predict")(xb))

    def _logs(self, return_dict=True, results=None):
        """The metrics' results (``results``: already computed, in :attr:`metrics` order)."""
        if results is None:
            results = [m.result() for m in self.metrics]
        logs = {m.name: _log_value(r) for m, r in zip(self.metrics, results)}
        if return_dict:
            return logs
        values = list(logs.values())
        return values[0] if len(values) == 1 else values

    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None,
            validation_split=0.0, validation_data=None, shuffle=True, initial_epoch=0,
            sample_weight=None, steps_per_epoch=None, validation_batch_size=None,
            validation_steps=None, class_weight=None):
        """Train for ``epochs`` over ``(x, y)`` in batches; returns a :class:`History`.

        ``x`` is arrays (NumPy, any framework's tensors, lists or dicts of them, with ``y``
        and ``sample_weight``), or a source of ``(x, y[, sample_weight])`` batches: a
        :class:`unidl.data.Dataset`, a generator, a sequence (``__len__`` and
        ``__getitem__``, as ``keras.utils.PyDataset``), or any iterable of batches (a
        PyTorch ``DataLoader``, a ``tf.data.Dataset``); see :mod:`unidl.data.adapters`.
        With a source, ``y``, ``sample_weight`` and ``batch_size`` must not be given and
        ``shuffle`` applies only to a sequence (the order of its batches).

        ``steps_per_epoch``: batches per epoch (required for an infinite source; with a
        source, epochs then continue where the previous one stopped, as Keras).
        ``validation_split`` holds out the last fraction of the data (arrays only, before
        shuffling); ``validation_data`` is ``(x_val, y_val)``, ``(x_val, y_val,
        sample_weight_val)`` or a source of batches (``validation_steps`` batches each time,
        if given). ``class_weight``: ``{class: weight}``, multiplied into the sample weights
        of the training batches (integer or one-hot labels; every class needs a weight).
        ``verbose``: 0 silent, 1 progress bar, 2 one line per epoch (``"auto"`` is 1).
        Every array must be numeric and all must have the same number of samples (checked
        before training; a ValueError names the arguments, and the batch for a source).
        When the loss becomes NaN or inf, ``fit`` warns once (``RuntimeWarning``) unless a
        :class:`~unidl.callbacks.TerminateOnNaN` callback is given; the loss is read only
        where the loop reads the logs anyway (callbacks, the progress bar, each epoch's end).
        """
        self._require_compiled("fit")
        train, val = adapters.fit_inputs(
            x, y, sample_weight, batch_size=batch_size, shuffle=shuffle,
            class_weight=class_weight, steps_per_epoch=steps_per_epoch,
            validation_split=validation_split, validation_data=validation_data,
            validation_steps=validation_steps, validation_batch_size=validation_batch_size,
            epochs=epochs - initial_epoch, float_dtype=self.dtype)
        train, val = self._sharded(train), self._sharded(val)
        try:
            return self._fit_epochs(train, val, epochs, verbose, callbacks, initial_epoch)
        finally:
            train.close()
            if val is not None:
                val.close()

    def _fit_epochs(self, train, val, epochs, verbose, callbacks, initial_epoch):
        """``fit``'s loop over epochs, on adapters (:mod:`unidl.data.adapters`)."""
        from unidl.callbacks import CallbackList, History

        verbose = 1 if verbose == "auto" else int(verbose)
        history = History()
        watch = _LossWatch(callbacks, epochs)
        cbs = CallbackList(callbacks, model=self, history=history, verbose=verbose,
                           epochs=epochs, steps=train.steps, logs_observer=watch)
        self.stop_training = False
        step = None
        cbs.on_train_begin()
        resumed, self._initial_epoch = getattr(self, "_initial_epoch", None), None
        if resumed is not None:  # (a BackupAndRestore callback restored a backup: go on after it)
            initial_epoch = resumed
        for epoch in range(initial_epoch, epochs):
            self.reset_metrics()
            watch.epoch = epoch
            cbs.on_epoch_begin(epoch)
            with contextlib.closing(train.epoch()) as batches:
                step, last = self._run_steps("train", batches, cbs.on_train_batch_begin,
                                             cbs.on_train_batch_end, step, stoppable=True)
            if last < 0 and train.exhausted:  # (nothing left: no empty epoch is logged)
                if epoch == initial_epoch:
                    raise ValueError("fit: x yielded no batches")
                warnings.warn(adapters.ran_out_message("fit", epoch), UserWarning,
                              stacklevel=3)
                break
            self._reduce_metrics()
            logs = self._logs(return_dict=True)
            if last >= 0:
                watch(last, logs)
            if val is not None:
                vlogs, ran = self._evaluate_batches(val, 0, None)
                if ran:
                    logs.update({f"val_{k}": v for k, v in vlogs.items()})
                if val.exhausted:  # (a one-shot validation generator ran dry)
                    warnings.warn(adapters.ran_out_message(
                        "fit", epoch, "validation_data", "validation_steps", "validation"),
                        UserWarning, stacklevel=3)
                    val = None
            cbs.on_epoch_end(epoch, logs)
            if train.exhausted:
                warnings.warn(adapters.ran_out_message("fit", epoch), UserWarning,
                              stacklevel=3)
                break
            if self.stop_training:
                break
        cbs.on_train_end()
        self.history = history
        return history

    def _sharded(self, adapter):
        """``adapter`` giving this worker its rows of every batch (distributed), or itself."""
        if adapter is None or self._replicas is None:
            return adapter
        from unidl.distribute.replicas import ShardedAdapter

        return ShardedAdapter(adapter, self._replicas.rank, self._replicas.world_size)

    def _reduce_metrics(self):
        """The metrics summed over the workers (distributed; at the end of a loop)."""
        if self._replicas is not None:
            from unidl.distribute.replicas import reduce_metrics

            reduce_metrics(self.metrics, self._replicas)

    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", sample_weight=None,
                 return_dict=False, callbacks=None, steps=None):
        """Loss and metrics over ``(x, y)``: ``[loss, *metrics]`` (a scalar if there are no
        metrics), or a dict with ``return_dict=True``. ``x`` is anything ``fit`` accepts;
        ``steps`` limits the number of batches (required for an infinite source)."""
        self._require_compiled("evaluate")
        data = adapters.adapt(x, y, sample_weight, where="evaluate", batch_size=batch_size,
                              steps=steps, steps_name="steps", float_dtype=self.dtype)
        data = self._sharded(data)
        try:
            logs, ran = self._evaluate_batches(data, verbose, callbacks)
        finally:
            data.close()
        if not ran and data.exhausted:
            raise ValueError("evaluate: x yielded no batches")
        if return_dict:
            return logs
        values = list(logs.values())
        return values[0] if len(values) == 1 else values

    def _evaluate_batches(self, data, verbose, callbacks):
        """The logs of one evaluation epoch of adapter ``data``, and the number of batches
        it ran."""
        from unidl.callbacks import CallbackList

        verbose = 1 if verbose == "auto" else int(verbose)
        cbs = CallbackList(callbacks, model=self, verbose=verbose, steps=data.steps,
                           mode="test")
        self.reset_metrics()
        cbs.on_test_begin()
        with contextlib.closing(data.epoch()) as batches:
            _, last = self._run_steps("test", batches, cbs.on_test_batch_begin,
                                      cbs.on_test_batch_end)
        self._reduce_metrics()
        logs = self._logs(return_dict=True)
        cbs.on_test_end(logs)
        return logs, last + 1

    def predict(self, x, batch_size=None, verbose="auto", callbacks=None, steps=None):
        """Outputs for ``x`` as NumPy arrays (batched; concatenated). ``x`` is anything
        ``fit`` accepts (of a source's ``(x, y)`` batches only ``x`` is used); ``steps``
        limits the number of batches (required for an infinite source)."""
        data = adapters.adapt(x, where="predict", batch_size=batch_size, steps=steps,
                              steps_name="steps", float_dtype=self.dtype, targets=False)
        try:
            with contextlib.closing(data.epoch()) as batches:
                outs = self._predict_batches(batches)
        finally:
            data.close()
        if not outs:
            raise ValueError("predict got no data")
        leaves = [tree.flatten(o)[0] for o in outs]
        _, treedef = tree.flatten(outs[0])
        joined = [np.concatenate([b[k] for b in leaves], axis=0) for k in range(len(leaves[0]))]
        return tree.unflatten(treedef, joined)

    def _predict_batches(self, batches):
        """Each batch's outputs as NumPy arrays. A batch is read back after the next one
        has been started, so a backend that dispatches asynchronously (JAX, CUDA) computes
        the next batch while this one is copied to the host."""
        outs, step, pending = [], None, None
        for xb, _, _ in batches:
            if step is None:
                self._ensure_built(xb)
                step = self._step("predict")
            out = step(xb)
            if pending is not None:
                outs.append(_host(pending))
            pending = out
        if pending is not None:
            outs.append(_host(pending))
        return outs

    def __call__(self, inputs, *args, **kwargs):
        return super().__call__(inputs, *args, **kwargs)


def _host(out):
    """A step's output (a tensor, or a structure of them) as NumPy arrays."""
    if out.__class__ in (list, tuple, dict):
        return tree.map_structure(ops.to_numpy, out)
    return ops.to_numpy(out)


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


def _replicated(strategy, raw):
    """The train step ``raw`` run as one replica of ``strategy`` (its engine's replica
    context; synchronized BatchNormalization finds the engine while it runs)."""
    from unidl.distribute.strategy import running

    def step(*args):
        with running(strategy):
            return raw(*args)

    return strategy.engine.replica_step(step)


def _looped(step):
    """A group of batches through ``step``, one call per batch."""
    def run(group):
        for xb, yb, wb in group:
            step(xb, yb, wb)

    return run


def _compiled_group(be, raw, training, treedef, leaves_per_batch, jit):
    """A group of batches through ``raw`` in one call of ``be.compile_function``: the
    compiled function takes the group's tensors flat (a signature of plain tensors, so
    TensorFlow dispatches it on its fast path and no ``None`` argument is passed) and its
    loop over the batches unrolls while tracing."""
    k = leaves_per_batch

    def run_group(*flat):
        for start in range(0, len(flat), k):
            xb, yb, wb = tree.unflatten(treedef, flat[start:start + k])
            raw(xb, yb, wb)

    fn = be.compile_function(run_group, jit=jit)
    if not training:
        fn = be.inference_function(fn)  # (evaluation: no gradients, as in ``_step``)

    def run(group):
        fn(*[leaf for batch in group for leaf in tree.flatten(batch)[0]])

    return run


class _LossWatch:
    """``fit``'s NaN/inf check: called with ``(batch index, logs)`` wherever the loop reads
    the logs anyway (when callbacks or the progress bar read them after a batch, and at the
    end of each epoch), so it adds no host sync. Warns once per ``fit``; off when a
    :class:`~unidl.callbacks.TerminateOnNaN` callback watches the loss instead."""

    def __init__(self, callbacks, epochs):
        from unidl.callbacks import TerminateOnNaN

        self.active = not any(isinstance(cb, TerminateOnNaN) for cb in callbacks or [])
        self.epochs = epochs
        self.epoch = 0

    def __call__(self, batch, logs):
        loss = logs.get("loss") if self.active else None
        if loss is None or math.isfinite(loss):
            return
        self.active = False
        warnings.warn(f"fit: the loss became {loss} in epoch {self.epoch + 1}/{self.epochs}, "
                      f"first seen at batch {batch} (the loss is read where callbacks or the "
                      "progress bar read the logs, else at the end of each epoch); check the "
                      "data for NaN or inf values, or lower the learning rate if training "
                      "diverges. Pass callbacks=[unidl.callbacks.TerminateOnNaN()] to stop "
                      "at the first such batch", RuntimeWarning, stacklevel=2)


def _sum(values):
    total = values[0]
    for v in values[1:]:
        total = ops.add(total, v)
    return total


def _is_float(x):
    return _dt.is_float(ops.dtype(x))


def _log_value(result):
    """A metric's result for the logs: a float, or a NumPy array for metrics whose result
    is one (``F1Score(average=None)``, ``ConfusionMatrix``), as Keras logs them."""
    value = np.asarray(ops.to_numpy(result))
    return float(value) if value.ndim == 0 else value
