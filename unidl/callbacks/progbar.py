"""``ProgbarLogger``: the progress output of ``fit`` and ``evaluate``."""

from __future__ import annotations

import sys
import time

import numpy as np

from unidl.callbacks.base import Callback

__all__ = ["ProgbarLogger"]


def _format_logs(logs: dict) -> str:
    return " - ".join(f"{k}: {_format_value(v)}" for k, v in logs.items())


def _format_value(value) -> str:
    """A float with 4 decimals; an array result (per-class F1, a confusion matrix) as a
    compact list."""
    if np.ndim(value) == 0:
        return f"{float(value):.4f}"
    return np.array2string(np.asarray(value), precision=4, separator=",",
                           max_line_width=10**6).replace("\n", "")


def _isatty(stream) -> bool:
    """Whether ``stream`` is a terminal (False for files, pipes, captured output, and
    streams without ``isatty`` or whose ``isatty`` fails, e.g. closed)."""
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


class ProgbarLogger(Callback):
    """The progress output of ``fit``/``evaluate``.

    ``verbose=1``: on a terminal, ``Epoch i/N`` and a bar redrawn in place (``\\r``) after
    every batch (or group of ``steps_per_execution`` batches); when the stream is not a
    terminal (a log file, a pipe, CI), one line per epoch, written when the epoch ends:
    ``45/45 1s 3ms/step - epoch 1/5 - loss: 0.4012 - val_loss: 0.3871``.
    ``verbose=2``: one line per epoch, ``Epoch 1/5 - 45/45 1s 3ms/step - loss: ...``,
    whatever the stream. ``evaluate`` writes one line when it ends.

    Example:
        >>> import io
        >>> from unidl.callbacks import ProgbarLogger
        >>> ProgbarLogger(stream=io.StringIO()).tty
        False
    """

    def __init__(self, verbose=1, stream=None):
        super().__init__()
        self.verbose = verbose
        self.stream = stream or sys.stdout
        self.tty = _isatty(self.stream)

    def _bar(self, done, total, start, logs):
        """``done/total`` with a bar, or ``done/?`` without one when the number of steps is
        unknown (a source of batches without a length)."""
        elapsed = time.perf_counter() - start
        per_step = elapsed / max(done, 1)
        width = 20
        filled = int(width * done / max(total, 1)) if total is not None else 0
        bar = "━" * filled + " " * (width - filled) if self.tty and total is not None else ""
        unit = f"{per_step * 1e3:.0f}ms/step" if per_step < 1 else f"{per_step:.1f}s/step"
        count = f"{done}/{'?' if total is None else total}"
        text = " ".join(part for part in (count, bar, f"{elapsed:.0f}s", unit) if part)
        return text + (f" - {_format_logs(logs)}" if logs else "")

    def on_train_begin(self, logs=None):
        self.epochs = self.params.get("epochs", 1)

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()
        self.seen = 0
        if self.verbose == 1 and self.tty:
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
        if self.verbose == 1 and self.tty:
            self.stream.write("\r" + self._bar(total, total, self.start, logs) + "\n")
        elif self.verbose == 1:  # (not a terminal: the epoch's one line)
            line = self._bar(total, total, self.start, None) + \
                f" - epoch {epoch + 1}/{self.epochs}"
            self.stream.write(line + (f" - {_format_logs(logs)}" if logs else "") + "\n")
        elif self.verbose == 2:
            line = self._bar(total, total, self.start, logs)
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
