"""``sparsity_report``: weights, non-zeros and sparsity per layer and in total."""

from __future__ import annotations

import numpy as np

from unidl.pruning.wrapper import PruneLowMagnitude, prunable_weights

__all__ = ["sparsity_report", "SparsityReport"]


class SparsityReport(dict):
    """The dict :func:`sparsity_report` returns; ``str(report)`` (or :meth:`table`) is a
    printable table."""

    def table(self) -> str:
        """One line per layer with weights, and the total."""
        head = ("layer", "class", "params", "non-zeros", "sparsity", "prunable sparsity")
        rows = [head]
        for r in [*self["layers"], self["total"]]:
            prunable = "-" if r["prunable_params"] == 0 else f"{r['prunable_sparsity']:.1%}"
            rows.append((r["layer"], r["class"], f"{r['params']:,}", f"{r['nonzeros']:,}",
                         f"{r['sparsity']:.1%}", prunable))
        widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
        lines = ["  ".join(c.ljust(w) if i < 2 else c.rjust(w)
                           for i, (c, w) in enumerate(zip(row, widths))) for row in rows]
        rule = "-" * len(lines[0])
        return "\n".join([lines[0], rule, *lines[1:-1], rule, lines[-1]])

    def __str__(self) -> str:
        return self.table()


def _leaf_layers(model):
    """The layers of ``model`` holding weights, nested models opened, wrappers kept."""
    from unidl.models.model import Model

    out = []
    for layer in getattr(model, "layers", None) or [model]:
        if isinstance(layer, Model) and layer is not model:
            out.extend(_leaf_layers(layer))
        else:
            out.append(layer)
    return out


def _row(layer) -> dict:
    inner = layer.layer if isinstance(layer, PruneLowMagnitude) else layer
    weights = inner.weights
    prunable = [w for _, _, w in prunable_weights(inner)]
    arrays = {id(w): w.numpy() for w in weights}
    params = sum(a.size for a in arrays.values())
    nonzeros = sum(int(np.count_nonzero(a)) for a in arrays.values())
    p_params = sum(arrays[id(w)].size for w in prunable if id(w) in arrays)
    p_nonzeros = sum(int(np.count_nonzero(arrays[id(w)])) for w in prunable if id(w) in arrays)
    cls = type(inner).__name__ + (" (pruned)" if inner is not layer else "")
    return _summary({"layer": inner.name, "class": cls, "pruned": inner is not layer,
                     "params": params, "nonzeros": nonzeros, "prunable_params": p_params,
                     "prunable_nonzeros": p_nonzeros})


def _summary(row: dict) -> dict:
    row["sparsity"] = 1.0 - row["nonzeros"] / row["params"] if row["params"] else 0.0
    row["prunable_sparsity"] = (1.0 - row["prunable_nonzeros"] / row["prunable_params"]
                                if row["prunable_params"] else 0.0)
    return row


def sparsity_report(model, print_fn=None) -> SparsityReport:
    """Weights, non-zeros and sparsity of every layer of ``model`` (or of one layer) with
    weights, and in total; pruning masks and step counters are not counted.

    Returns a dict ``{"layers": [row, ...], "total": row}``, each row with ``layer``,
    ``class``, ``pruned`` (wrapped by :func:`prune_low_magnitude`), ``params``, ``nonzeros``,
    ``sparsity`` (the fraction of zeros) and the same for the prunable weights alone
    (kernels, embeddings: ``prunable_params``, ``prunable_nonzeros``,
    ``prunable_sparsity``). ``print_fn`` (e.g. ``print``) also gets the table.

    Example:
        >>> import unidl
        >>> from unidl import layers, pruning
        >>> with unidl.use_backend("numpy"):
        ...     model = unidl.Sequential([layers.Dense(4, input_shape=(2,), use_bias=False)])
        ...     _ = model.layers[0].kernel.assign([[0.0, 1.0, 0.0, 2.0], [0.0, 0.0, 3.0, 0.0]])
        ...     report = pruning.sparsity_report(model)
        ...     report["total"]["params"], report["total"]["nonzeros"], report["total"]["sparsity"]
        (8, 3, 0.625)
    """
    rows = [_row(layer) for layer in _leaf_layers(model) if layer.weights]
    total = {"layer": "total", "class": "", "pruned": any(r["pruned"] for r in rows)}
    for key in ("params", "nonzeros", "prunable_params", "prunable_nonzeros"):
        total[key] = sum(r[key] for r in rows)
    report = SparsityReport(layers=rows, total=_summary(total))
    if print_fn is not None:
        print_fn(report.table())
    return report
