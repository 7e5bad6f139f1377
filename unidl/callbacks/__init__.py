"""Callbacks for ``Model.fit``: History, the progress output, EarlyStopping, ModelCheckpoint,
TerminateOnNaN, LearningRateScheduler, ReduceLROnPlateau, CSVLogger, TensorBoard,
BackupAndRestore, LambdaCallback, and the ``Callback`` base class (Keras 3 semantics).

Modules: :mod:`~unidl.callbacks.base` (``Callback``, ``History``, ``LambdaCallback``),
:mod:`~unidl.callbacks.progbar`, :mod:`~unidl.callbacks.callback_list` (how ``fit`` calls
them), :mod:`~unidl.callbacks.core` (training control), :mod:`~unidl.callbacks.tensorboard`
(needs ``pip install "unidl[tensorboard]"``, imported when one is created) and
:mod:`~unidl.callbacks.backup`.
"""

from __future__ import annotations

from unidl.callbacks.backup import BackupAndRestore
from unidl.callbacks.base import Callback, History, LambdaCallback
from unidl.callbacks.callback_list import CallbackList
from unidl.callbacks.core import (
    CSVLogger,
    EarlyStopping,
    LearningRateScheduler,
    ModelCheckpoint,
    ReduceLROnPlateau,
    TerminateOnNaN,
    get_learning_rate,
    set_learning_rate,
)
from unidl.callbacks.progbar import ProgbarLogger
from unidl.callbacks.tensorboard import TensorBoard

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
    "TensorBoard",
    "BackupAndRestore",
    "LambdaCallback",
    "get_learning_rate",
    "set_learning_rate",
]
