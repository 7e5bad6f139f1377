"""``model.summary()``: a table of layers, output shapes and parameter counts.

The columns are as wide as their longest entry (layer name and class, output shape,
parameter count) within a total width: by default at least 78 characters and at most
:data:`MAX_WIDTH`; an entry that does not fit its column wraps onto more lines, never cut.

Example:
    >>> import unidl
    >>> from unidl import layers
    >>> from unidl.models.summary import summary_lines
    >>> with unidl.use_backend("numpy"):
    ...     model = unidl.Sequential([layers.Dense(2, input_shape=(3,), name="out")],
    ...                              name="tiny")
    ...     lines = summary_lines(model)
    >>> lines[4].split()
    ['out', '(Dense)', '(None,', '2)', '8']
"""

from __future__ import annotations

import textwrap

import numpy as np

__all__ = ["summary_lines", "MAX_WIDTH"]

MIN_WIDTH = 78  # the default total width when everything fits
MAX_WIDTH = 120  # the widest a table grows by default; longer entries wrap
_GAP = 2  # spaces after the first two columns
_MIN_COLUMN = 12  # the narrowest the first two columns get together is twice this


def _count(weights) -> int:
    return int(sum(int(np.prod(w.shape, dtype=np.int64)) for w in weights))


def _rows(model) -> list[tuple[str, str, str]]:
    rows = [("Layer (type)", "Output Shape", "Param #")]
    for layer in model.layers:
        shape = getattr(layer, "_last_output_shape", None)
        rows.append((f"{layer.name} ({type(layer).__name__})",
                     str(shape) if shape is not None else "?",
                     f"{_count(layer.weights):,}" if layer.built else "0 (unbuilt)"))
    return rows


def _widths(rows, line_length) -> tuple[int, int, int]:
    """Column widths (gaps included in the first two) for a total of ``line_length``
    (``None``: fit the entries, between ``MIN_WIDTH`` and ``MAX_WIDTH``)."""
    natural = [max(len(r[i]) for r in rows) + (_GAP if i < 2 else 0) for i in range(3)]
    total = line_length if line_length is not None else \
        min(max(sum(natural), MIN_WIDTH), MAX_WIDTH)
    w2 = natural[2]
    room = max(total - w2, 2 * _MIN_COLUMN)
    if natural[0] + natural[1] <= room:  # everything fits: share the slack 45:35 as before
        slack = room - natural[0] - natural[1]
        w0 = natural[0] + slack * 45 // 80
        return w0, room - w0, w2
    # too wide: the shapes get what they need up to half the room, the names the rest
    w1 = min(natural[1], max(room // 2, room - natural[0]))
    return room - w1, w1, w2


def _wrap(text, width) -> list[str]:
    return textwrap.wrap(text, width, break_long_words=True, break_on_hyphens=False) or [""]


def _format(row, widths) -> list[str]:
    w0, w1, w2 = widths
    cells = [_wrap(row[0], w0 - _GAP), _wrap(row[1], w1 - _GAP), _wrap(row[2], w2)]
    height = max(len(c) for c in cells)
    cells = [c + [""] * (height - len(c)) for c in cells]
    return [(a.ljust(w0) + b.ljust(w1) + c.rjust(w2)).rstrip()
            for a, b, c in zip(*cells)]


def summary_lines(model, line_length: int | None = None) -> list[str]:
    """The lines of ``model.summary()``; ``line_length``: the total width (``None``: fit
    the entries within ``MAX_WIDTH``)."""
    rows = _rows(model)
    widths = _widths(rows, line_length)
    width = sum(widths)
    bar = "=" * width
    out = [f'Model: "{model.name}"', "_" * width]
    out += _format(rows[0], widths)
    out.append(bar)
    for r in rows[1:]:
        out += _format(r, widths)
    out.append(bar)
    total = _count(model.weights) if model.built else 0
    trainable = _count(model.trainable_weights) if model.built else 0
    out.append(f"Total params: {total:,}")
    out.append(f"Trainable params: {trainable:,}")
    out.append(f"Non-trainable params: {total - trainable:,}")
    out.append("_" * width)
    return out
