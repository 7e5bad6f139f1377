"""``plot_history``: training curves from ``model.fit``'s ``History``.

One subplot per quantity (the loss, then each metric, then anything else recorded such as a
learning rate), each with the training values and, when recorded, the validation values
(``val_<name>``) on the same axes, against the epoch number.

Example:
    >>> import os, tempfile
    >>> from unidl.utils.history import history_quantities
    >>> logs = {"loss": [0.9, 0.5], "accuracy": [0.6, 0.8], "val_loss": [1.0, 0.7]}
    >>> [(name, train, val) for name, train, val in history_quantities(logs)]
    [('loss', [0.9, 0.5], [1.0, 0.7]), ('accuracy', [0.6, 0.8], None)]
    >>> from unidl.utils import plot_history
    >>> path = os.path.join(tempfile.mkdtemp(), "curves.png")
    >>> plot_history(logs, path) == path  # doctest: +SKIP
    True
"""

from __future__ import annotations

import math
import numbers

from unidl.utils._common import PlotError, load_matplotlib, save_figure, target

__all__ = ["plot_history", "history_dict", "history_quantities"]

_TRAIN_COLOR, _VAL_COLOR = "#1f77b4", "#ff7f0e"


def _scalar(value):
    """``value`` as a float when it is one number (a Python or NumPy scalar, or a
    one-element array or tensor), else ``None``."""
    if isinstance(value, numbers.Real):
        return float(value)
    try:
        import numpy as np

        array = np.asarray(value.detach().cpu() if hasattr(value, "detach") else value)
    except Exception:
        return None
    if array.size == 1 and array.dtype.kind in "biuf":
        return float(array.reshape(()))
    return None


def history_dict(history) -> dict:
    """``{name: [float per epoch]}`` from a ``History`` (its ``.history``) or a dict of
    lists; entries that are not numbers per epoch are left out."""
    logs = getattr(history, "history", history)
    if not isinstance(logs, dict):
        raise PlotError(f"plot_history takes the History that fit returns (or its .history "
                        f"dict); got {type(history).__name__}")
    out = {}
    for name, values in logs.items():
        if isinstance(values, (str, bytes)):
            continue
        try:
            values = [_scalar(v) for v in values]
        except TypeError:
            continue
        if values and all(v is not None for v in values):
            out[str(name)] = values
    return out


def _names(logs: dict) -> list[str]:
    """The quantities in order: loss first, then the others in their recorded order; a
    ``val_x`` without ``x`` is a quantity of its own."""
    names = []
    for key in logs:
        base = key[4:] if key.startswith("val_") and key[4:] in logs else key
        if base not in names:
            names.append(base)
    return sorted(names, key=lambda n: (n != "loss" and n != "val_loss", names.index(n)))


def history_quantities(history, metrics=None) -> list[tuple]:
    """``[(name, train values or None, validation values or None)]``: one entry per subplot;
    ``metrics``: the names to keep, in that order (``"loss"``, ``"accuracy"``...)."""
    logs = history_dict(history)
    if not logs:
        raise PlotError("plot_history: the history has no values per epoch (did fit run an "
                        "epoch?)")
    names = _names(logs)
    if metrics is not None:
        metrics = [metrics] if isinstance(metrics, str) else list(metrics)
        unknown = [m for m in metrics if m not in names and m not in logs]
        if unknown:
            raise PlotError(f"plot_history: the history has no {', '.join(map(repr, unknown))}"
                            f"; it has {', '.join(map(repr, names))}")
        names = metrics
    out = []
    for name in names:
        if name.startswith("val_") and (name[4:] not in logs or metrics is not None):
            out.append((name, None, logs[name]))  # validation values on their own
        else:
            out.append((name, logs.get(name), logs.get(f"val_{name}")))
    return out


def _epochs(history, count: int) -> list[int]:
    epochs = getattr(history, "epoch", None)
    if isinstance(epochs, list) and len(epochs) == count:
        return [int(e) + 1 for e in epochs]
    return list(range(1, count + 1))


def _subplot(ax, name, train, val, epochs):
    from matplotlib.ticker import MaxNLocator

    marker = "o" if max(len(train or []), len(val or [])) <= 30 else None
    for values, label, color in ((train, "train", _TRAIN_COLOR),
                                 (val, "validation", _VAL_COLOR)):
        if values:
            ax.plot(epochs[:len(values)], values, label=label, color=color, marker=marker,
                    markersize=3.5, linewidth=1.6)
    ax.set_title(name)
    ax.set_xlabel("epoch")
    ax.set_ylabel(name)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", fontsize="small")


def plot_history(history, path, metrics=None, dpi: float = 100) -> str:
    """Draw the curves of a ``History`` (or its ``.history`` dict) to ``path`` (``.png`` or
    ``.svg``, written atomically); return ``path``.

    One subplot per quantity: ``"loss"`` first, then each metric, training and validation
    (``val_*``) on the same axes against the epoch (1, 2, ...). ``metrics``: the quantities
    to draw, in order (default: all). Needs matplotlib (``pip install "unidl[plot]"``).
    """
    path, fmt = target(path, "plot_history")
    quantities = history_quantities(history, metrics)
    Figure, FigureCanvasAgg = load_matplotlib("plot_history")
    count = len(quantities)
    cols = 1 if count == 1 else 2
    rows = math.ceil(count / cols)
    fig = Figure(figsize=(5.2 * cols, 3.6 * rows), dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    length = max(len(t or v) for _, t, v in quantities)
    epochs = _epochs(history, length)
    for k, (name, train, val) in enumerate(quantities):
        _subplot(fig.add_subplot(rows, cols, k + 1), name, train, val, epochs)
    return save_figure(fig, path, fmt, "plot_history", dpi=dpi)
