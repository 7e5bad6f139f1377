"""``BackupAndRestore``: resume an interrupted ``fit`` where it stopped.

At the end of every epoch the whole training state is written to ``backup_dir``:

* ``model-epochNNNNN.unidl``: the model with its optimizer state (``model.save``, atomic);
* ``backup.json``: the number of epochs done, the name of that model file, the state of
  unidl's host random generator (:func:`unidl.random.get_state`: shuffling orders, and in
  deterministic mode dropout masks and augmentation) and of NumPy's global generator.

``backup.json`` is written last (atomically, :func:`unidl.saving.files.atomic_write`) and is
the commit point: a run killed at any moment leaves either the previous backup or the new
one, whole. The previous model file is removed only after that.
"""

from __future__ import annotations

import json
import os

import numpy as np

from unidl.callbacks.base import Callback, is_chief

__all__ = ["BackupAndRestore"]

STATE_FILE = "backup.json"
_FORMAT = "unidl.backup"
_PREFIX, _SUFFIX = "model-epoch", ".unidl"


def _numpy_state() -> list:
    """NumPy's global generator state (``np.random.get_state()``) as JSON values."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    return [kind, keys.tolist(), int(pos), int(has_gauss), float(gauss)]


def _set_numpy_state(saved: list) -> None:
    kind, keys, pos, has_gauss, gauss = saved
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, gauss))


class BackupAndRestore(Callback):
    """Back up the training state at the end of each epoch; a new ``fit`` with the same
    callback restores it and continues from the next epoch.

    What is saved, atomically, in ``backup_dir``: the model and its optimizer state
    (``model.save`` to a ``.unidl`` file), the number of epochs done, and the random state:
    unidl's host generator (:func:`unidl.random.get_state`) and NumPy's global one. A
    restarted ``fit`` (same model, data and arguments) restores them in ``on_train_begin``
    and starts at the next epoch, so in deterministic mode
    (:func:`unidl.random.set_deterministic`) shuffling and dropout continue exactly and the
    run ends with the same weights as one that was never interrupted. Keras 3's
    ``BackupAndRestore`` restores the weights and the epoch but not the random state.
    Outside deterministic mode the shuffling order still continues (it is drawn on the
    host), but each framework's own generator (dropout) is not restored.

    Args:
        backup_dir: a directory for this run's backup only (created when needed).
        save_freq: ``"epoch"`` (the only one supported: a backup after every epoch).
        delete_checkpoint: delete the backup when ``fit`` ends normally (also after an
            early stop or :class:`TerminateOnNaN`, as Keras); ``False`` keeps it, and a
            later ``fit`` then starts after the last epoch backed up.

    The model must be built before ``fit`` (``input_shape=`` on the first layer, or called
    on a batch) unless the backup records its input shape. Callbacks' own state (e.g.
    :class:`EarlyStopping`'s patience count) is not backed up.

    Example:
        >>> import tempfile
        >>> import numpy as np
        >>> import unidl
        >>> from unidl import layers
        >>> with unidl.use_backend("numpy"):
        ...     model = unidl.Sequential([layers.Dense(1, input_shape=(2,))])
        ...     model.compile("sgd", "mse")
        ...     backup = unidl.callbacks.BackupAndRestore(tempfile.mkdtemp())
        ...     stop = unidl.callbacks.LambdaCallback(on_epoch_end=lambda e, logs: (
        ...         e == 1 and (_ for _ in ()).throw(KeyboardInterrupt)))
        ...     x, y = np.ones((4, 2), "float32"), np.zeros(4, "float32")
        ...     try:
        ...         _ = model.fit(x, y, epochs=4, verbose=0, callbacks=[backup, stop])
        ...     except KeyboardInterrupt:
        ...         pass
        ...     model.fit(x, y, epochs=4, verbose=0, callbacks=[backup]).epoch
        [2, 3]
    """

    def __init__(self, backup_dir, save_freq="epoch", delete_checkpoint=True):
        super().__init__()
        if not backup_dir:
            raise ValueError("BackupAndRestore: backup_dir must be a directory path, got "
                             f"{backup_dir!r}")
        if save_freq != "epoch":
            raise ValueError("BackupAndRestore: save_freq must be 'epoch' (unidl backs up "
                             f"the training state at the end of each epoch), got {save_freq!r}")
        self.backup_dir = os.fspath(backup_dir)
        if os.path.exists(self.backup_dir) and not os.path.isdir(self.backup_dir):
            raise ValueError(f"BackupAndRestore: backup_dir {self.backup_dir!r} is a file, "
                             "not a directory")
        self.save_freq = save_freq
        self.delete_checkpoint = bool(delete_checkpoint)
        self.restored_epoch = None  # the epoch the last fit resumed at (None: from scratch)

    @property
    def _state_path(self) -> str:
        return os.path.join(self.backup_dir, STATE_FILE)

    # -- hooks ------------------------------------------------------------------------------
    def on_train_begin(self, logs=None):
        self.restored_epoch = None
        state = self._read_state()
        if state is not None:
            self._restore(state)

    def on_epoch_end(self, epoch, logs=None):
        self._save(epoch + 1)

    def on_train_end(self, logs=None):
        if self.delete_checkpoint:
            self._delete()

    # -- saving -----------------------------------------------------------------------------
    def _save(self, epochs_done: int) -> None:
        """Write the model file, then commit with ``backup.json``, then drop older files
        (data-parallel workers: only the chief writes; every worker restores)."""
        if not is_chief(self.model):
            return
        from unidl import __version__, current_backend
        from unidl import random as urandom
        from unidl.saving.files import atomic_write
        from unidl.saving.model_file import ModelFileError

        os.makedirs(self.backup_dir, exist_ok=True)
        name = f"{_PREFIX}{epochs_done:05d}{_SUFFIX}"
        try:
            self.model.save(os.path.join(self.backup_dir, name))
        except ModelFileError as exc:
            raise ModelFileError(f"BackupAndRestore({self.backup_dir!r}): cannot back up the "
                                 f"model: {exc}") from None
        state = {"format": _FORMAT, "version": 1, "epoch": epochs_done, "model_file": name,
                 "random": urandom.get_state(), "numpy_random": _numpy_state(),
                 "deterministic": urandom.is_deterministic(),
                 "backend": current_backend().name, "unidl_version": __version__}
        atomic_write(self._state_path, json.dumps(state).encode())
        self._remove_model_files(keep=name)

    def _remove_model_files(self, keep=None) -> None:
        for entry in os.listdir(self.backup_dir):
            if entry.startswith(_PREFIX) and entry.endswith(_SUFFIX) and entry != keep:
                os.unlink(os.path.join(self.backup_dir, entry))

    def _delete(self) -> None:
        """Remove the backup (``backup.json`` first: no half backup is ever read), and
        ``backup_dir`` if that leaves it empty."""
        if not is_chief(self.model):
            return
        if not os.path.isdir(self.backup_dir):
            return
        if os.path.exists(self._state_path):
            os.unlink(self._state_path)
        self._remove_model_files()
        try:
            os.rmdir(self.backup_dir)
        except OSError:  # (other files in it: left alone)
            pass

    # -- restoring --------------------------------------------------------------------------
    def _read_state(self) -> dict | None:
        """``backup.json``'s contents, None when there is no backup, or an error naming the
        file when it cannot be used."""
        from unidl.saving.files import SaveFileError

        if not os.path.isfile(self._state_path):
            return None
        try:
            with open(self._state_path, encoding="utf-8") as fh:
                state = json.load(fh)
            if state.get("format") != _FORMAT or not isinstance(state.get("epoch"), int):
                raise ValueError("not a unidl backup")
            if "model_file" not in state or "random" not in state:
                raise ValueError("no model_file or random state")
        except (OSError, ValueError, AttributeError) as exc:
            raise SaveFileError(f"BackupAndRestore: cannot read the backup "
                                f"{self._state_path!r} ({exc}); delete {self.backup_dir!r} "
                                "to train from the start") from None
        return state

    def _restore(self, state: dict) -> None:
        """Weights, optimizer state, random state and the epoch to start at."""
        from unidl import random as urandom
        from unidl.saving import model_file as mf
        from unidl.saving.weights import assign_weights

        path = os.path.join(self.backup_dir, state["model_file"])
        members = mf._read_archive(path)
        self._ensure_built(path, members)
        names, values = mf._arrays(path, members, mf.WEIGHTS, "weights")
        assign_weights(self.model, names, values, f"BackupAndRestore: cannot restore {path!r}: "
                                                  "its weights do not fit the model")
        if mf.OPTIMIZER in members and getattr(self.model, "optimizer", None) is not None:
            mf._restore_optimizer(path, self.model, members)
        urandom.set_state(state["random"])
        if state.get("numpy_random"):
            _set_numpy_state(state["numpy_random"])
        self.model._initial_epoch = self.restored_epoch = int(state["epoch"])

    def _ensure_built(self, path: str, members: dict) -> None:
        """Build an unbuilt model from the input shape the backup records, or raise."""
        from unidl.saving import model_file as mf
        from unidl.saving.files import SaveFileError

        if self.model.weights:
            return
        shape = mf._read_config(path, members).get("build_input_shape")
        if shape is not None:
            self.model(mf._dummy_inputs(shape), training=False)
        if not self.model.weights:
            raise SaveFileError(f"BackupAndRestore: model {self.model.name!r} is not built, so "
                                f"the backup in {self.backup_dir!r} cannot be restored into it; "
                                "give the first layer input_shape=... or call the model on a "
                                "batch before fit")
