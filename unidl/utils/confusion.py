"""``plot_confusion_matrix``: a heatmap of a confusion matrix, with the count (and the
normalized value) in each cell.

It takes a matrix (a NumPy array, a tensor, or a metric object with ``result()`` such as a
confusion-matrix metric), or true and predicted labels, from which :func:`confusion_matrix`
counts it (predicted probabilities or one-hot rows are turned into labels by their
largest column).

Example:
    >>> from unidl.utils.confusion import confusion_matrix, normalized
    >>> cm = confusion_matrix([0, 1, 1, 2], [0, 1, 2, 2])
    >>> cm.tolist()
    [[1, 0, 0], [0, 1, 1], [0, 0, 1]]
    >>> normalized(cm, "true")[1].tolist()
    [0.0, 0.5, 0.5]
"""

from __future__ import annotations

import numpy as np

from unidl.utils._common import PlotError, load_matplotlib, save_figure, target

__all__ = ["plot_confusion_matrix", "confusion_matrix", "normalized", "NORMALIZE"]

#: ``normalize=`` values: rows sum to 1 (``"true"``), columns (``"pred"``), all cells
NORMALIZE = (None, "true", "pred", "all")


def _array(value, what: str) -> np.ndarray:
    """``value`` (a list, array or tensor of any backend) as a NumPy array."""
    if hasattr(value, "result") and callable(value.result):
        value = value.result()
    if hasattr(value, "detach"):
        value = value.detach().cpu()
    try:
        return np.asarray(value)
    except Exception as exc:
        raise PlotError(f"plot_confusion_matrix: {what} is not an array: {exc}") from None


def _labels_of(values: np.ndarray, what: str) -> np.ndarray:
    """Integer class labels: 1-D labels as they are, rows of scores by their argmax."""
    if values.ndim == 2 and values.shape[1] > 1:
        values = values.argmax(axis=1)
    elif values.ndim == 2:
        values = values[:, 0]
    if values.ndim != 1:
        raise PlotError(f"plot_confusion_matrix: {what} must be labels (n,) or scores "
                        f"(n, classes); got shape {values.shape}")
    if values.dtype.kind == "f":
        if values.size and not np.all(values == np.round(values)):
            raise PlotError(f"plot_confusion_matrix: {what} has non-integer values; give "
                            "class labels, or scores of shape (n, classes)")
    elif values.dtype.kind not in "biu":
        raise PlotError(f"plot_confusion_matrix: {what} must be integer class labels; got "
                        f"dtype {values.dtype} (encode labels with np.unique(y, "
                        "return_inverse=True))")
    values = values.astype(np.int64)
    if values.size and values.min() < 0:
        raise PlotError(f"plot_confusion_matrix: {what} has a negative label "
                        f"{int(values.min())}")
    return values


def confusion_matrix(y_true, y_pred, num_classes: int | None = None) -> np.ndarray:
    """Counts ``[true class, predicted class]`` (int64) of two label arrays (or score
    arrays, reduced by argmax); ``num_classes``: default one more than the largest label."""
    t = _labels_of(_array(y_true, "y_true"), "y_true")
    p = _labels_of(_array(y_pred, "y_pred"), "y_pred")
    if len(t) != len(p):
        raise PlotError(f"plot_confusion_matrix: y_true has {len(t)} labels and y_pred "
                        f"{len(p)}; they must be as many")
    largest = int(max(t.max(initial=-1), p.max(initial=-1))) + 1
    n = largest if num_classes is None else int(num_classes)
    if largest > n:
        raise PlotError(f"plot_confusion_matrix: label {largest - 1} does not fit "
                        f"{n} classes")
    matrix = np.zeros((n, n), np.int64)
    np.add.at(matrix, (t, p), 1)
    return matrix


def normalized(matrix: np.ndarray, normalize) -> np.ndarray:
    """``matrix`` divided by its row sums (``"true"``), column sums (``"pred"``) or total
    (``"all"``); empty rows or columns stay 0."""
    if normalize not in NORMALIZE:
        raise PlotError(f"plot_confusion_matrix: normalize must be one of "
                        f"{', '.join(map(repr, NORMALIZE))}; got {normalize!r}")
    m = matrix.astype(np.float64)
    if normalize is None:
        return m
    if normalize == "true":
        total = m.sum(axis=1, keepdims=True)
    elif normalize == "pred":
        total = m.sum(axis=0, keepdims=True)
    else:
        total = np.array(m.sum())
    return np.divide(m, total, out=np.zeros_like(m), where=total != 0)


def _matrix(matrix_or_y_true, y_pred, labels) -> np.ndarray:
    if y_pred is not None:
        return confusion_matrix(matrix_or_y_true, y_pred,
                                len(labels) if labels is not None else None)
    matrix = _array(matrix_or_y_true, "the matrix")
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or matrix.shape[0] == 0:
        raise PlotError(f"plot_confusion_matrix: a confusion matrix is square (classes, "
                        f"classes); got shape {matrix.shape} (to count one from labels, "
                        "pass y_true and y_pred)")
    if matrix.dtype.kind not in "biuf" or (matrix.size and np.nanmin(matrix) < 0):
        raise PlotError("plot_confusion_matrix: a confusion matrix holds counts (numbers "
                        ">= 0)")
    return matrix


def _cell_text(count, value, normalize) -> str:
    count_text = f"{int(count)}" if float(count).is_integer() else f"{count:.3g}"
    return count_text if normalize is None else f"{count_text}\n{value:.2f}"


def plot_confusion_matrix(matrix_or_y_true, y_pred=None, path=None, labels=None,
                          normalize=None, title: str | None = None, dpi: float = 100) -> str:
    """Draw a confusion matrix as a heatmap to ``path`` (``.png`` or ``.svg``, written
    atomically); return ``path``.

    Give the matrix (rows: true classes, columns: predicted), or ``y_true`` and ``y_pred``
    (labels, or scores whose argmax is the label). ``labels``: the class names (default
    0, 1, ...); ``normalize``: ``"true"``, ``"pred"`` or ``"all"`` colours the cells by the
    fraction of their row, column or of everything and writes it under the count. Needs
    matplotlib (``pip install "unidl[plot]"``).
    """
    if path is None:
        raise PlotError("plot_confusion_matrix: give the file to write, path='cm.png'")
    path, fmt = target(path, "plot_confusion_matrix")
    matrix = _matrix(matrix_or_y_true, y_pred, labels)
    n = matrix.shape[0]
    names = [str(v) for v in (labels if labels is not None else range(n))]
    if len(names) != n:
        raise PlotError(f"plot_confusion_matrix: {len(names)} labels for {n} classes")
    values = normalized(matrix, normalize)
    Figure, FigureCanvasAgg = load_matplotlib("plot_confusion_matrix")
    side = min(max(3.5, 0.55 * n + 2.2), 24.0)
    fig = Figure(figsize=(side + 1.2, side), dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    image = ax.imshow(values, cmap="Blues", vmin=0, interpolation="nearest")
    fig.colorbar(image, ax=ax, label="count" if normalize is None else f"fraction ({normalize})")
    top = values.max() if values.size else 0
    if n <= 30:
        for i in range(n):
            for j in range(n):
                ax.text(j, i, _cell_text(matrix[i, j], values[i, j], normalize),
                        ha="center", va="center", fontsize=8 if n > 12 else 10,
                        color="white" if top and values[i, j] > top / 2 else "black")
    ax.set_xticks(range(n), names, rotation=45 if max(map(len, names)) > 3 else 0,
                  ha="right" if max(map(len, names)) > 3 else "center")
    ax.set_yticks(range(n), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title or "confusion matrix" + (f" (normalized: {normalize})"
                                                 if normalize else ""))
    return save_figure(fig, path, fmt, "plot_confusion_matrix", dpi=dpi)
