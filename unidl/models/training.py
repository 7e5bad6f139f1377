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


_NUMERIC_KINDS = frozenset("biufc")  # bool, int, uint, float, complex
_KIND_WORDS = {"U": "strings", "S": "bytes", "O": "Python objects", "V": "raw records",
               "M": "datetimes", "m": "timedeltas"}


def _named_leaves(name, data):
    """``(name, array)`` for each array of ``data``, in :func:`unidl.tree.flatten`'s order:
    ``x``; ``x[0]``, ``x[1]`` for lists and tuples; ``x['a']`` for dicts."""
    if isinstance(data, (list, tuple)):
        return [leaf for i, d in enumerate(data) for leaf in _named_leaves(f"{name}[{i}]", d)]
    if isinstance(data, dict):
        return [leaf for k in sorted(data) for leaf in _named_leaves(f"{name}[{k!r}]", data[k])]
    return [] if data is None else [(name, data)]


_TARGETS = ("y", "validation_data[1]")


def _non_numeric(where, name, dtype, target) -> ValueError:
    what = _KIND_WORDS.get(dtype.kind, "non-numeric values")
    if target:
        hint = ("encode labels as integers, e.g. `classes, y = np.unique(y, "
                "return_inverse=True)` (classes[i] is the name of label i)")
    else:
        hint = ("convert it to numbers first, e.g. categories to integer codes with "
                "`np.unique(column, return_inverse=True)`")
    if dtype.kind == "O":
        hint += "; if it holds numbers, convert it with `.astype('float32')`"
    return ValueError(f"{where}: {name} has dtype {dtype} ({what}); unidl trains on numeric "
                      f"arrays only: {hint}")


def _host_leaf(where, arg, name, value):
    """``value`` as a host NumPy array, checked to be numeric and to have a batch axis."""
    if isinstance(value, np.ndarray):
        arr = value
    elif ops.is_tensor(value):
        arr = np.asarray(ops.to_numpy(value))
    else:
        try:
            arr = np.asarray(value)
        except ValueError as exc:  # ragged nested sequences
            raise ValueError(f"{where}: {name} is not a rectangular array ({exc}); pass "
                             "a NumPy array with one row per sample") from None
    if arr.dtype.kind not in _NUMERIC_KINDS:
        raise _non_numeric(where, name, arr.dtype, arg in _TARGETS)
    if arr.ndim == 0:
        raise ValueError(f"{where}: {name} is a scalar ({arr!r}); expected an array whose "
                         "first axis indexes the samples (a Python list is read as one array "
                         "per model input or output: pass np.asarray(...) for one array)")
    return arr


def _host_data(where, **named):
    """The named data structures (``x=``, ``y=``, ``sample_weight=``; None allowed) as host
    NumPy arrays of one structure each, after checking every array is numeric and all have
    the same number of samples. The first one (the inputs) must hold data. A ValueError
    names the argument and its dtype, or every argument with its length."""
    out, lengths = {}, []
    for arg, data in named.items():
        if isinstance(data, (list, tuple, dict)):
            leaves = _named_leaves(arg, data)
            arrays = [_host_leaf(where, arg, name, value) for name, value in leaves]
            out[arg] = tree.unflatten(tree.flatten(data)[1], arrays)
            lengths += [(name, len(a)) for (name, _), a in zip(leaves, arrays)]
        elif data is not None:  # (one array: the common case, kept short)
            out[arg] = _host_leaf(where, arg, arg, data)
            lengths.append((arg, len(out[arg])))
        else:
            out[arg] = None
        if not lengths:
            raise ValueError(f"{where}: no input data ({arg} is {data!r})")
    if len({n for _, n in lengths}) > 1:
        got = ", ".join(f"{name} has {n}" for name, n in lengths)
        raise ValueError(f"{where}: all inputs, targets and sample weights must have the same "
                         f"number of samples (length of the first axis); got: {got}")
    return out


def _num_samples(data) -> int:
    return len(tree.flatten(data)[0][0])


def _to_model_tensor(x, float_dtype):
    arr = np.asarray(x)
    if arr.dtype.kind == "f":
        return ops.convert_to_tensor(arr, float_dtype)
    return ops.convert_to_tensor(arr)


def _model_tensors(data, float_dtype):
    if isinstance(data, np.ndarray):
        return _to_model_tensor(data, float_dtype)
    return tree.map_structure(lambda a: _to_model_tensor(a, float_dtype), data)


class _Batches:
    """Host-side batching of checked host arrays (from :func:`_host_data`), shuffled with
    unidl's portable RNG."""

    def __init__(self, x, y, sample_weight, batch_size, shuffle, float_dtype):
        self.x, self.y, self.w = x, y, sample_weight
        self.n = _num_samples(self.x)
        self.batch_size = int(batch_size or 32)
        self.shuffle = shuffle
        self.float_dtype = float_dtype

    def __len__(self):
        return math.ceil(self.n / self.batch_size)

    def epoch(self, steps=None):
        """The batches ``(x, y, w)`` of one epoch as model tensors (at most ``steps``)."""
        from unidl import random as urandom

        order = urandom.permutation(self.n) if self.shuffle else None
        stop = self.n if steps is None else min(self.n, steps * self.batch_size)
        for start in range(0, stop, self.batch_size):
            idx = order[start:start + self.batch_size] if order is not None else \
                slice(start, start + self.batch_size)
            def take(a, idx=idx):
                return _to_model_tensor(a[idx], self.float_dtype)

            xb = tree.map_structure(take, self.x)
            yb = tree.map_structure(take, self.y) if self.y is not None else None
            wb = take(self.w) if self.w is not None else None
            yield xb, yb, wb


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


def _split_validation(data, split):
    """``data`` (a dict of host structures: x, y, sample_weight) cut into the first
    ``1 - split`` for training and the rest for validation (before any shuffling)."""
    n = _num_samples(data["x"])
    cut = int(n * (1.0 - split))
    if cut <= 0 or cut >= n:
        raise ValueError(f"fit: validation_split={split} of {n} samples leaves no training or "
                         "validation data")

    def part(sl):
        return {k: tree.map_structure(lambda a: a[sl], v) if v is not None else None
                for k, v in data.items()}

    return part(slice(None, cut)), part(slice(cut, None))


def _validation_arrays(validation_data):
    """``validation_data`` ``(x, y[, sample_weight])`` as checked host arrays."""
    if not isinstance(validation_data, (list, tuple)) or len(validation_data) not in (2, 3):
        got = f"a {type(validation_data).__name__}" + (
            f" of {len(validation_data)} items" if isinstance(validation_data, (list, tuple))
            else "")
        raise ValueError("fit: validation_data must be (x_val, y_val) or (x_val, y_val, "
                         f"sample_weight_val); got {got}")
    parts = dict(zip(("validation_data[0]", "validation_data[1]", "validation_data[2]"),
                     validation_data))
    arrays = list(_host_data("fit", **parts).values())
    return {"x": arrays[0], "y": arrays[1], "sample_weight": arrays[2] if len(arrays) > 2
            else None}


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
            steps_per_execution: batches per call of the train/test step in ``fit`` and
                ``evaluate`` (one compiled call where the step is compiled: TensorFlow, or
                ``jit_compile=True``; a loop of eager steps elsewhere). Callbacks' batch
                hooks and the progress bar run once per call: ``on_*_batch_begin`` with the
                index of the group's first batch, ``on_*_batch_end`` with its last; the last
                group of an epoch may be shorter.
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
            if inspect.unwrap(step) == raw:
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
        ``validation_data`` is ``(x_val, y_val)`` or ``(x_val, y_val, sample_weight_val)``.
        ``verbose``: 0 silent, 1 progress bar, 2 one line per epoch (``"auto"`` is 1).
        Every array must be numeric and all must have the same number of samples (checked
        before training; a ValueError names the arguments). When the loss becomes NaN or inf,
        ``fit`` warns once (``RuntimeWarning``) unless a
        :class:`~unidl.callbacks.TerminateOnNaN` callback is given; the loss is read only
        where the loop reads the logs anyway (callbacks, the progress bar, each epoch's end).
        """
        from unidl.callbacks import CallbackList, History

        self._require_compiled("fit")
        data = _host_data("fit", x=x, y=y, sample_weight=sample_weight)
        val = None
        if validation_data is not None:
            val = _validation_arrays(validation_data)
        elif validation_split:
            data, val = _split_validation(data, validation_split)
        batches = _Batches(data["x"], data["y"], data["sample_weight"], batch_size or 32,
                           shuffle, self.dtype)
        steps = len(batches) if steps_per_epoch is None else min(len(batches),
                                                                 int(steps_per_epoch))
        verbose = 1 if verbose == "auto" else int(verbose)
        history = History()
        watch = _LossWatch(callbacks, epochs)
        cbs = CallbackList(callbacks, model=self, history=history, verbose=verbose,
                           epochs=epochs, steps=steps, logs_observer=watch)
        self.stop_training = False
        step = None
        cbs.on_train_begin()
        for epoch in range(initial_epoch, epochs):
            self.reset_metrics()
            watch.epoch = epoch
            cbs.on_epoch_begin(epoch)
            step, last = self._run_steps("train", batches.epoch(steps_per_epoch),
                                         cbs.on_train_batch_begin, cbs.on_train_batch_end,
                                         step, stoppable=True)
            logs = self._logs(return_dict=True)
            if last >= 0:
                watch(last, logs)
            if val is not None:
                vlogs = self.evaluate(val["x"], val["y"], sample_weight=val["sample_weight"],
                                      batch_size=validation_batch_size or batch_size,
                                      verbose=0, return_dict=True, _internal=True)
                logs.update({f"val_{k}": v for k, v in vlogs.items()})
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
        data = _host_data("evaluate", x=x, y=y, sample_weight=sample_weight)
        batches = _Batches(data["x"], data["y"], data["sample_weight"], batch_size or 32,
                           False, self.dtype)
        verbose = 1 if verbose == "auto" else int(verbose)
        cbs = CallbackList(callbacks, model=self, verbose=verbose if not _internal else 0,
                           steps=len(batches), mode="test")
        self.reset_metrics()
        cbs.on_test_begin()
        self._run_steps("test", batches.epoch(), cbs.on_test_batch_begin, cbs.on_test_batch_end)
        logs = self._logs(return_dict=True)
        cbs.on_test_end(logs)
        return logs if return_dict else self._logs(return_dict=False)

    def predict(self, x, batch_size=None, verbose="auto", callbacks=None):
        """Outputs for ``x`` as NumPy arrays (batched; concatenated)."""
        data = _host_data("predict", x=x)
        batches = _Batches(data["x"], None, None, batch_size or 32, False, self.dtype)
        outs = []
        step = None
        for xb, _, _ in batches.epoch():
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
