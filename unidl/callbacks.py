"""Callbacks for ``Model.fit``: History, progress bar, EarlyStopping, ModelCheckpoint,
TerminateOnNaN, LearningRateScheduler, ReduceLROnPlateau, CSVLogger, and the ``Callback``
base class."""

from __future__ import annotations

import csv
import math
import os
import sys
import time

import numpy as np

__all__ = [
    "Callback",
    "CallbackList",
    "History",
    "ProgbarLogger",
    "EarlyStopping",
    "ModelCheckpoint",
    "TerminateOnNaN",
    "LearningRateScheduler",
    "ReduceLROnPlateau",
    "CSVLogger",
    "LambdaCallback",
]


class Callback:
    """Base class: override any ``on_*`` method. ``self.model`` and ``self.params`` are set."""

    def __init__(self):
        self.model = None
        self.params = {}

    def set_model(self, model):
        self.model = model

    def set_params(self, params):
        self.params = params

    def on_train_begin(self, logs=None): ...

    def on_train_end(self, logs=None): ...

    def on_epoch_begin(self, epoch, logs=None): ...

    def on_epoch_end(self, epoch, logs=None): ...

    def on_train_batch_begin(self, batch, logs=None): ...

    def on_train_batch_end(self, batch, logs=None): ...

    def on_test_begin(self, logs=None): ...

    def on_test_end(self, logs=None): ...

    def on_test_batch_begin(self, batch, logs=None): ...

    def on_test_batch_end(self, batch, logs=None): ...


class LambdaCallback(Callback):
    """A callback from plain functions, e.g. ``LambdaCallback(on_epoch_end=fn)``."""

    def __init__(self, **hooks):
        super().__init__()
        for name, fn in hooks.items():
            if not name.startswith("on_"):
                raise ValueError(f"LambdaCallback: unknown hook {name!r}")
            setattr(self, name, fn)


class History(Callback):
    """Records the logs of every epoch: ``history.history["loss"]`` etc."""

    def __init__(self):
        super().__init__()
        self.history: dict[str, list] = {}
        self.epoch: list[int] = []

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for k, v in (logs or {}).items():
            self.history.setdefault(k, []).append(v)


def _format_logs(logs: dict) -> str:
    return " - ".join(f"{k}: {v:.4f}" for k, v in logs.items())


class ProgbarLogger(Callback):
    """The progress bar of ``fit``/``evaluate`` (``verbose=1``) or one line per epoch (2)."""

    def __init__(self, verbose=1, stream=None):
        super().__init__()
        self.verbose = verbose
        self.stream = stream or sys.stdout
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()

    def _bar(self, done, total, start, logs):
        """``done/total`` with a bar, or ``done/?`` without one when the number of steps is
        unknown (a source of batches without a length)."""
        elapsed = time.perf_counter() - start
        per_step = elapsed / max(done, 1)
        width = 20
        filled = int(width * done / max(total, 1)) if total is not None else 0
        bar = "━" * filled + " " * (width - filled) if self.tty and total is not None else ""
        unit = f"{per_step * 1e3:.0f}ms/step" if per_step < 1 else f"{per_step:.1f}s/step"
        text = f"{done}/{'?' if total is None else total} {bar} {elapsed:.0f}s {unit}"
        return text + (f" - {_format_logs(logs)}" if logs else "")

    def on_train_begin(self, logs=None):
        self.epochs = self.params.get("epochs", 1)

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()
        self.seen = 0
        if self.verbose == 1:
            self.stream.write(f"Epoch {epoch + 1}/{self.epochs}\n")

    def on_train_batch_end(self, batch, logs=None):
        self.seen = batch + 1
        if self.verbose == 1 and self.tty:
            self.stream.write("\r" + self._bar(self.seen, self.params["steps"], self.start,
                                               logs() if callable(logs) else logs))
            self.stream.flush()

    def on_epoch_end(self, epoch, logs=None):
        total = self.params.get("steps")
        total = self.seen if total is None else total
        line = self._bar(total, total, self.start, logs)
        if self.verbose == 1:
            self.stream.write(("\r" if self.tty else "") + line + "\n")
        elif self.verbose == 2:
            self.stream.write(f"Epoch {epoch + 1}/{self.epochs} - {line}\n")
        self.stream.flush()

    def on_test_begin(self, logs=None):
        self.start = time.perf_counter()
        self.test_seen = 0

    def on_test_batch_end(self, batch, logs=None):
        self.test_seen = batch + 1  # (logs not read: no host sync)

    def on_test_end(self, logs=None):
        if self.verbose:
            total = self.params.get("steps")
            total = self.test_seen if total is None else total
            self.stream.write(self._bar(total, total, self.start, logs) + "\n")
            self.stream.flush()


class _BatchLogs:
    """A batch's logs, computed on the first call only (and shown to ``observer``); one
    instance per CallbackList, reset for each batch (no allocation per step)."""

    __slots__ = ("fn", "batch", "observer", "logs")

    def __init__(self, observer=None):
        self.fn, self.batch, self.observer, self.logs = None, -1, observer, None

    def reset(self, fn, batch):
        self.fn, self.batch, self.logs = fn, batch, None
        return self

    def __call__(self):
        if self.logs is None:
            self.logs = self.fn()
            if self.observer is not None:
                self.observer(self.batch, self.logs)
        return self.logs


class CallbackList:
    """Dispatches events to callbacks; logs are computed lazily for per-batch events (once
    per batch, only if a callback reads them; ``logs_observer(batch, logs)`` sees them)."""

    def __init__(self, callbacks=None, model=None, history=None, verbose=1, epochs=1, steps=0,
                 mode="train", logs_observer=None):
        self.callbacks = list(callbacks or [])
        self._train_logs = _BatchLogs(logs_observer)
        self._test_logs = _BatchLogs()
        if history is not None:
            self.callbacks.insert(0, history)
        if verbose:
            self.callbacks.append(ProgbarLogger(verbose))
        params = {"epochs": epochs, "steps": steps, "verbose": verbose}
        for cb in self.callbacks:
            cb.set_model(model)
            cb.set_params(params)
        self._batch_hooks = {
            name: [cb for cb in self.callbacks if _overrides(cb, name)]
            for name in ("on_train_batch_begin", "on_train_batch_end", "on_test_batch_begin",
                         "on_test_batch_end")
        }

    def _call(self, name, *args):
        for cb in self.callbacks:
            getattr(cb, name)(*args)

    def on_train_begin(self):
        self._call("on_train_begin", {})

    def on_train_end(self):
        self._call("on_train_end", {})

    def on_epoch_begin(self, epoch):
        self._call("on_epoch_begin", epoch, {})

    def on_epoch_end(self, epoch, logs):
        self._call("on_epoch_end", epoch, logs)

    def on_train_batch_begin(self, batch):
        for cb in self._batch_hooks["on_train_batch_begin"]:
            cb.on_train_batch_begin(batch, {})

    def on_train_batch_end(self, batch, logs_fn):
        hooks = self._batch_hooks["on_train_batch_end"]
        if not hooks:
            return
        logs = self._train_logs.reset(logs_fn, batch)
        for cb in hooks:
            if isinstance(cb, ProgbarLogger):
                cb.on_train_batch_end(batch, logs)
            else:
                cb.on_train_batch_end(batch, logs())

    def on_test_begin(self):
        self._call("on_test_begin", {})

    def on_test_batch_begin(self, batch):
        for cb in self._batch_hooks["on_test_batch_begin"]:
            cb.on_test_batch_begin(batch, {})

    def on_test_batch_end(self, batch, logs_fn):
        hooks = self._batch_hooks["on_test_batch_end"]
        if not hooks:
            return
        logs = self._test_logs.reset(logs_fn, batch)
        for cb in hooks:
            if isinstance(cb, ProgbarLogger):
                cb.on_test_batch_end(batch, logs)
            else:
                cb.on_test_batch_end(batch, logs())

    def on_test_end(self, logs):
        self._call("on_test_end", logs)


def _overrides(cb, name):
    """Whether ``cb`` defines hook ``name`` (in its class, or as an instance attribute as
    :class:`LambdaCallback` does)."""
    return name in vars(cb) or getattr(type(cb), name) is not getattr(Callback, name)


def _mode(mode, monitor):
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
    if mode == "auto":
        mode = "max" if any(s in monitor for s in ("acc", "auc", "precision", "recall")) \
            else "min"
    return mode


class EarlyStopping(Callback):
    """Stop training when ``monitor`` stops improving for ``patience`` epochs."""

    def __init__(self, monitor="val_loss", min_delta=0.0, patience=0, verbose=0, mode="auto",
                 baseline=None, restore_best_weights=False, start_from_epoch=0):
        super().__init__()
        self.monitor, self.patience, self.verbose = monitor, patience, verbose
        self.mode = _mode(mode, monitor)
        self.min_delta = abs(min_delta) * (1 if self.mode == "max" else -1)
        self.baseline, self.restore_best_weights = baseline, restore_best_weights
        self.start_from_epoch = start_from_epoch

    def _better(self, a, b):
        return (a - self.min_delta > b) if self.mode == "max" else (a - self.min_delta < b)

    def on_train_begin(self, logs=None):
        self.wait = 0
        self.stopped_epoch = 0
        self.best = -math.inf if self.mode == "max" else math.inf
        self.best_weights = None
        self.best_epoch = 0

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None or epoch < self.start_from_epoch:
            return
        self.wait += 1
        if self._better(value, self.best) and (
                self.baseline is None or self._better(value, self.baseline)):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True
            if self.restore_best_weights and self.best_weights is not None:
                self.model.set_weights(self.best_weights)

    def on_train_end(self, logs=None):
        if self.stopped_epoch and self.verbose:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping")


class ModelCheckpoint(Callback):
    """Save the model after each epoch (or only when ``monitor`` improves).

    ``filepath`` may contain ``{epoch}`` and log keys, e.g. ``"ckpt-{epoch:02d}.unidl"``.
    With ``save_weights_only=True`` (the default) the weights are saved
    (:meth:`~unidl.Model.save_weights`: ``.weights.safetensors`` or ``.npz``); with ``False``
    the whole model, ready to resume training (:meth:`~unidl.Model.save`: ``.unidl``, or
    ``.keras`` for Keras 3). The
    extension is checked here; files are written atomically.

    Example:
        >>> from unidl.callbacks import ModelCheckpoint
        >>> ModelCheckpoint("ckpt-{epoch:02d}.weights.safetensors").save_weights_only
        True
    """

    def __init__(self, filepath, monitor="val_loss", verbose=0, save_best_only=False,
                 save_weights_only=True, mode="auto", save_freq="epoch"):
        super().__init__()
        self.filepath, self.monitor, self.verbose = os.fspath(filepath), monitor, verbose
        self.save_weights_only = bool(save_weights_only)
        _check_checkpoint_path(self.filepath, self.save_weights_only)
        self.save_best_only = save_best_only
        self.mode = _mode(mode, monitor)
        self.best = -math.inf if self.mode == "max" else math.inf
        if save_freq != "epoch":
            raise ValueError("ModelCheckpoint supports save_freq='epoch'")

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        path = self.filepath.format(epoch=epoch + 1, **logs)
        if self.save_best_only:
            value = logs.get(self.monitor)
            if value is None:
                return
            improved = value > self.best if self.mode == "max" else value < self.best
            if not improved:
                return
            self.best = value
        if self.save_weights_only:
            self.model.save_weights(path)
        else:
            self.model.save(path)
        if self.verbose:
            what = "weights" if self.save_weights_only else "model"
            print(f"Epoch {epoch + 1}: saved the {what} to {path}")


def _check_checkpoint_path(filepath: str, weights_only: bool) -> None:
    if weights_only:
        from unidl.saving import weights_format

        weights_format(filepath, "ModelCheckpoint filepath")
    elif os.path.splitext(filepath)[1].lower() not in (".unidl", ".keras"):
        raise ValueError(f"ModelCheckpoint(save_weights_only=False): filepath {filepath!r} "
                         "must end in .unidl (a whole model, as model.save writes) or .keras "
                         "(a Keras 3 file)")


class TerminateOnNaN(Callback):
    """Stop training after a batch whose loss is NaN or inf (Keras semantics): print
    ``Batch <i>: Invalid loss, terminating training`` and set ``model.stop_training``.

    It reads the loss after every batch (one host sync per step). Without it, ``fit`` still
    warns once when the loss it reads anyway becomes NaN or inf.

    Example:
        >>> import numpy as np
        >>> import unidl
        >>> from unidl import layers
        >>> with unidl.use_backend("numpy"):
        ...     model = unidl.Sequential([layers.Dense(1, input_shape=(2,))])
        ...     model.compile("sgd", "mse")
        ...     x = np.array([[np.nan, 1.0]] * 4, "float32")
        ...     h = model.fit(x, np.zeros(4), batch_size=2, verbose=0,
        ...                   callbacks=[unidl.callbacks.TerminateOnNaN()])
        Batch 0: Invalid loss, terminating training
    """

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss):
            print(f"Batch {batch}: Invalid loss, terminating training")
            self.model.stop_training = True


def get_learning_rate(optimizer) -> float:
    lr = optimizer.learning_rate
    if callable(lr) and not hasattr(lr, "numpy"):
        lr = lr(optimizer.iterations)
    from unidl import ops

    return float(ops.to_numpy(lr.value if hasattr(lr, "assign") else lr))


def set_learning_rate(optimizer, value: float) -> None:
    lr = optimizer.learning_rate
    if hasattr(lr, "assign"):
        lr.assign(np.asarray(value, dtype=np.float32))
    else:
        optimizer.learning_rate = float(value)


class LearningRateScheduler(Callback):
    """Set the learning rate each epoch to ``schedule(epoch, lr)``."""

    def __init__(self, schedule, verbose=0):
        super().__init__()
        self.schedule, self.verbose = schedule, verbose

    def on_epoch_begin(self, epoch, logs=None):
        lr = self.schedule(epoch, get_learning_rate(self.model.optimizer))
        set_learning_rate(self.model.optimizer, lr)
        if self.verbose:
            print(f"Epoch {epoch + 1}: learning rate {lr:.6g}")

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = get_learning_rate(self.model.optimizer)


class ReduceLROnPlateau(Callback):
    """Multiply the learning rate by ``factor`` when ``monitor`` plateaus for ``patience``."""

    def __init__(self, monitor="val_loss", factor=0.1, patience=10, verbose=0, mode="auto",
                 min_delta=1e-4, cooldown=0, min_lr=0.0):
        super().__init__()
        if factor >= 1.0:
            raise ValueError("ReduceLROnPlateau: factor must be < 1")
        self.monitor, self.factor, self.patience = monitor, factor, patience
        self.verbose, self.min_delta, self.cooldown, self.min_lr = verbose, min_delta, cooldown, \
            min_lr
        self.mode = _mode(mode, monitor)

    def on_train_begin(self, logs=None):
        self.wait = 0
        self.cooldown_counter = 0
        self.best = -math.inf if self.mode == "max" else math.inf

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None:
            return
        if logs is not None:
            logs["learning_rate"] = get_learning_rate(self.model.optimizer)
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        better = (value > self.best + self.min_delta) if self.mode == "max" else \
            (value < self.best - self.min_delta)
        if better:
            self.best, self.wait = value, 0
            return
        if self.cooldown_counter > 0:
            return
        self.wait += 1
        if self.wait >= self.patience:
            old = get_learning_rate(self.model.optimizer)
            new = max(old * self.factor, self.min_lr)
            if old > new:
                set_learning_rate(self.model.optimizer, new)
                if self.verbose:
                    print(f"Epoch {epoch + 1}: reducing learning rate to {new:.6g}")
            self.cooldown_counter = self.cooldown
            self.wait = 0


class CSVLogger(Callback):
    """Append each epoch's logs as a CSV row to ``filename``."""

    def __init__(self, filename, separator=",", append=False):
        super().__init__()
        self.filename, self.sep, self.append = os.fspath(filename), separator, append

    def on_train_begin(self, logs=None):
        exists = self.append and os.path.exists(self.filename)
        self.file = open(self.filename, "a" if self.append else "w", newline="")  # noqa: SIM115
        self.writer = None
        self.header_written = exists

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        if self.writer is None:
            self.keys = sorted(logs)
            self.writer = csv.writer(self.file, delimiter=self.sep)
            if not self.header_written:
                self.writer.writerow(["epoch"] + self.keys)
        self.writer.writerow([epoch] + [logs.get(k, "") for k in self.keys])
        self.file.flush()

    def on_train_end(self, logs=None):
        self.file.close()
