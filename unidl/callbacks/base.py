"""The ``Callback`` base class, :class:`LambdaCallback` and :class:`History`."""

from __future__ import annotations

__all__ = ["Callback", "LambdaCallback", "History", "is_chief"]


def is_chief(model=None) -> bool:
    """Whether this process writes checkpoints and logs: rank 0 of ``model``'s
    :class:`~unidl.distribute.DataParallel` strategy (or of the launched workers), or any
    process that is not one of several workers."""
    strategy = getattr(model, "_distribution", None)
    if strategy is not None:
        return strategy.is_chief
    from unidl.distribute.strategy import is_chief as outside

    return outside()


class Callback:
    """Base class: override any ``on_*`` method. ``self.model`` and ``self.params`` are set.

    ``chief_only = True`` (the callbacks that write files or print) runs a callback only on
    the chief worker (rank 0) of data-parallel training; see :func:`is_chief`.
    """

    chief_only = False

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
