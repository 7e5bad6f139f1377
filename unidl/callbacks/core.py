"""Training-control callbacks: EarlyStopping, ModelCheckpoint, TerminateOnNaN,
LearningRateScheduler, ReduceLROnPlateau and CSVLogger (Keras 3 semantics)."""

from __future__ import annotations

import csv
import math
import os

import numpy as np

from unidl.callbacks.base import Callback

__all__ = ["EarlyStopping", "ModelCheckpoint", "TerminateOnNaN", "LearningRateScheduler",
           "ReduceLROnPlateau", "CSVLogger", "get_learning_rate", "set_learning_rate"]


def _mode(mode, monitor):
    """``"min"`` or ``"max"``: ``mode``, or for ``"auto"`` what ``monitor``'s name implies."""
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

    chief_only = True  # (only rank 0 of data-parallel workers writes)

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
    """Stop training after a batch whose loss is NaN or inf (Keras 3 semantics).

    By default it prints ``Batch <i>: Invalid loss, terminating training`` and sets
    ``model.stop_training``: ``fit`` ends after that batch and every callback's
    ``on_train_end`` runs (a :class:`BackupAndRestore` then deletes its backup, as in
    Keras). With ``raise_error=True`` it raises a ``RuntimeError`` instead, so ``fit`` stops
    at once and no ``on_train_end`` runs (a backup is kept).

    It reads the loss after every batch (one host sync per step; with
    ``steps_per_execution=N``, per group of N batches). Without it, ``fit`` still warns once
    when the loss it reads anyway becomes NaN or inf.

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

    def __init__(self, raise_error: bool = False):
        super().__init__()
        self.raise_error = bool(raise_error)

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is None or math.isfinite(loss):
            return
        if self.raise_error:
            raise RuntimeError(f"NaN or Inf loss encountered at batch {batch}. Loss value: "
                               f"{loss}. Terminating training immediately.")
        print(f"Batch {batch}: Invalid loss, terminating training")
        self.model.stop_training = True


def get_learning_rate(optimizer) -> float:
    """The optimizer's current learning rate as a float (a schedule's value at its step)."""
    lr = optimizer.learning_rate
    if callable(lr) and not hasattr(lr, "numpy"):
        lr = lr(optimizer.iterations)
    from unidl import ops

    return float(ops.to_numpy(lr.value if hasattr(lr, "assign") else lr))


def set_learning_rate(optimizer, value: float) -> None:
    """Set the optimizer's learning rate to ``value`` (its Variable when it has one)."""
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

    chief_only = True  # (only rank 0 of data-parallel workers writes)

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
