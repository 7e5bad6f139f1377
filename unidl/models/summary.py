"""``model.summary()``: a table of layers, output shapes and parameter counts."""

from __future__ import annotations

import numpy as np

__all__ = ["summary_lines"]


def _count(weights) -> int:
    return int(sum(int(np.prod(w.shape, dtype=np.int64)) for w in weights))


def summary_lines(model, line_length: int = 78) -> list[str]:
    rows = [("Layer (type)", "Output Shape", "Param #")]
    for layer in model.layers:
        shape = getattr(layer, "_last_output_shape", None)
        rows.append((f"{layer.name} ({type(layer).__name__})",
                     str(shape) if shape is not None else "?",
                     f"{_count(layer.weights):,}" if layer.built else "0 (unbuilt)"))
    w0, w1 = int(line_length * 0.45), int(line_length * 0.35)
    w2 = line_length - w0 - w1
    bar = "=" * line_length
    out = [f'Model: "{model.name}"', "_" * line_length]
    out.append(rows[0][0].ljust(w0) + rows[0][1].ljust(w1) + rows[0][2].rjust(w2))
    out.append(bar)
    for r in rows[1:]:
        out.append(r[0][: w0 - 1].ljust(w0) + r[1].ljust(w1) + r[2].rjust(w2))
    out.append(bar)
    total = _count(model.weights) if model.built else 0
    trainable = _count(model.trainable_weights) if model.built else 0
    out.append(f"Total params: {total:,}")
    out.append(f"Trainable params: {trainable:,}")
    out.append(f"Non-trainable params: {total - trainable:,}")
    out.append("_" * line_length)
    return out
