"""``CallbackList``: how ``fit``/``evaluate`` dispatch events to callbacks."""

from __future__ import annotations

from unidl.callbacks.base import Callback, is_chief
from unidl.callbacks.progbar import ProgbarLogger

__all__ = ["CallbackList"]


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
        if not is_chief(model):  # (another worker: rank 0 writes the files and prints)
            self.callbacks = [cb for cb in self.callbacks if not cb.chief_only]
            verbose = 0
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
