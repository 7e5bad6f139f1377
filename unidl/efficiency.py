"""The efficiency report: what a model costs to store and run, and what it gets right.

:func:`report` measures one model or several (a float32 model, its pruned and its quantized
versions; model objects or saved ``.unidl`` files) on the same data: parameters, non-zero
weights, the saved file's size (and gzipped, where pruning's zeros pay off), accuracy, and
inference latency (``model.predict`` over the data). It only saves, loads and predicts, so it
works for any model unidl can save. ``unidl efficiency MODEL_FILE ... --data mnist`` is the
same from the command line.

Example:
    >>> import numpy as np
    >>> import unidl
    >>> from unidl import efficiency, layers
    >>> with unidl.use_backend("numpy"):
    ...     unidl.random.set_seed(0)
    ...     model = unidl.Sequential([layers.Dense(3, "softmax", input_shape=(4,))])
    ...     x, y = np.eye(4, dtype="float32"), np.array([0, 1, 2, 0])
    ...     result = efficiency.report(model, (x, y), print_fn=None, repeats=1)
    ...     row = result["model"]
    ...     row["params"], row["nonzeros"], 0.0 <= row["accuracy"] <= 1.0, row["file_bytes"] > 0
    (15, 12, True, True)
"""

from __future__ import annotations

import gzip
import os
import sys
import tempfile
import time

import numpy as np

__all__ = ["report", "EfficiencyReport", "accuracy", "load_data", "add_parser", "main"]


class EfficiencyReport(dict):
    """``{name: row}`` (insertion order: the first model is the reference); ``str(report)``
    (or :meth:`table`) is the printable table."""

    def table(self) -> str:
        """One line per model; the last columns compare each with the first."""
        head = ("model", "params", "non-zeros", "file", "gzipped", "accuracy", "latency",
                "smaller", "gz smaller", "speed-up", "acc. change")
        rows = [head]
        for name, r in self.items():
            rows.append((name, f"{r['params']:,}", f"{r['nonzeros']:,}", _kb(r["file_bytes"]),
                         _kb(r["gzip_bytes"]), _pct(r["accuracy"]),
                         f"{r['latency_ms']:.1f} ms", _times(r["size_ratio"]),
                         _times(r["gzip_ratio"]), _times(r["speedup"]),
                         _points(r["accuracy_change"])))
        widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
        lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                           for i, (c, w) in enumerate(zip(row, widths))) for row in rows]
        notes = [f"{name}: {r['note']}" for name, r in self.items() if r.get("note")]
        return "\n".join([lines[0], "-" * len(lines[0]), *lines[1:], *notes])

    def __str__(self) -> str:
        return self.table()


def _kb(n):
    return "-" if n is None else f"{n / 1024:,.1f} KB"


def _pct(v):
    return "-" if v is None else f"{v:.2%}"


def _times(v):
    return "-" if v is None else f"{v:.2f}x"


def _points(v):
    return "-" if v is None else f"{100 * v:+.2f} pt"


def accuracy(predictions, y) -> float:
    """The fraction of correct predictions: the arg-max class of each row of
    ``predictions`` against integer labels (or one-hot rows) ``y``; for one output column,
    ``> 0.5`` against 0/1 labels.

    Example:
        >>> import numpy as np
        >>> from unidl.efficiency import accuracy
        >>> accuracy(np.array([[0.9, 0.1], [0.3, 0.7], [0.6, 0.4]]), np.array([0, 1, 1]))
        0.6666666666666666
    """
    p, y = np.asarray(predictions), np.asarray(y)
    if p.ndim >= 2 and p.shape[-1] > 1:
        guess = p.argmax(axis=-1)
        if y.shape == p.shape:
            y = y.argmax(axis=-1)
    else:
        guess = (p.reshape(len(p), -1)[:, 0] > 0.5).astype(np.int64)
    y = y.reshape(guess.shape)
    if len(y) == 0:
        raise ValueError("accuracy: no samples")
    return float(np.mean(guess == y))


def _as_model(entry, name):
    """The model of a model object or a saved file (loaded uncompiled)."""
    from unidl.layers.base import Layer

    if isinstance(entry, (str, os.PathLike)):
        import unidl

        return unidl.load_model(os.fspath(entry), compile=False)
    if isinstance(entry, Layer):
        return entry
    raise TypeError(f"efficiency.report: model {name!r} must be a unidl model or the path of a "
                    f"saved .unidl file, got {type(entry).__name__}")


def _stripped(model):
    """``(model, note)``: a model with pruning wrappers is measured stripped (as deployed)."""
    pruning = sys.modules.get("unidl.pruning")
    if pruning is not None and pruning.pruning_wrappers(model):
        return pruning.strip_pruning(model), "pruning wrappers stripped (strip_pruning)"
    return model, None


def _file_sizes(model):
    """``(bytes, gzipped bytes, note)`` of the model's ``.unidl`` file as saved for
    inference: architecture and weights, without optimizer state (a compiled model is
    saved through an uncompiled copy, so a training checkpoint and a deployed model compare
    fairly)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.unidl")
        try:
            if getattr(model, "optimizer", None) is not None:
                from unidl.saving import clone_model

                model = clone_model(model)
            model.save(path)
        except Exception as exc:  # a model unidl cannot save: say so, measure the rest
            return None, None, f"not saved ({type(exc).__name__}: {exc})"
        with open(path, "rb") as fh:
            data = fh.read()
    return len(data), len(gzip.compress(data, compresslevel=9)), None


def _fit_input(model, x):
    """``x`` reshaped to the model's input shape when only the layout differs (28x28 images
    for a model taking (28, 28, 1) or 784 values)."""
    shape = getattr(model, "input_shape", None)
    if not isinstance(shape, tuple) or any(d is None for d in shape[1:]):
        return x
    want = tuple(shape[1:])
    if tuple(x.shape[1:]) != want and int(np.prod(want)) == int(np.prod(x.shape[1:])):
        return x.reshape((len(x),) + want)
    return x


def _measure(model, x, y, batch_size, repeats) -> dict:
    model, note = _stripped(model)
    weights = [w.numpy() for w in model.weights]
    size, gz, save_note = _file_sizes(model)
    x = _fit_input(model, x)
    predictions = np.asarray(model.predict(x, batch_size=batch_size, verbose=0))  # (warm-up)
    times = []
    for _ in range(max(1, int(repeats))):
        start = time.perf_counter()
        model.predict(x, batch_size=batch_size, verbose=0)
        times.append(time.perf_counter() - start)
    seconds = min(times)  # (the least disturbed run: others' load only adds time)
    return {"params": int(sum(w.size for w in weights)),
            "nonzeros": int(sum(np.count_nonzero(w) for w in weights)),
            "file_bytes": size, "gzip_bytes": gz,
            "accuracy": None if y is None else accuracy(predictions, y),
            "latency_ms": 1000.0 * seconds, "per_sample_us": 1e6 * seconds / max(1, len(x)),
            "note": "; ".join(n for n in (note, save_note) if n) or None}


def _compare(rows: dict) -> None:
    first = next(iter(rows.values()))
    for r in rows.values():
        r["sparsity"] = 1.0 - r["nonzeros"] / r["params"] if r["params"] else 0.0
        r["size_ratio"] = (first["file_bytes"] / r["file_bytes"]
                           if first["file_bytes"] and r["file_bytes"] else None)
        r["gzip_ratio"] = (first["gzip_bytes"] / r["gzip_bytes"]
                           if first["gzip_bytes"] and r["gzip_bytes"] else None)
        r["speedup"] = first["latency_ms"] / r["latency_ms"] if r["latency_ms"] else None
        r["accuracy_change"] = (r["accuracy"] - first["accuracy"]
                                if r["accuracy"] is not None and first["accuracy"] is not None
                                else None)


def report(model=None, data=None, baseline=None, *, models=None, batch_size=256, repeats=3,
           print_fn=print) -> EfficiencyReport:
    """Measure models on ``data`` and compare them with the first.

    Args:
        model: a model, or the path of a saved ``.unidl`` file.
        data: ``(x, y)`` (integer labels or one-hot rows; accuracy is the arg-max's) or
            ``x`` alone (no accuracy). ``x`` is reshaped to a model's input shape when only
            the layout differs.
        baseline: a model (or file) to compare ``model`` with; it comes first.
        models: instead of ``model``/``baseline``: ``{name: model or file}``, e.g.
            ``{"float32": m0, "pruned": m1, "int8": m2}``; the first is the reference.
        batch_size: the batch size of ``predict``.
        repeats: timed ``predict`` runs over the data (after one warm-up run that also gives
            the accuracy); the latency is the fastest (as ``timeit``: load from other
            processes only ever adds time).
        print_fn: called with the table (``None``: print nothing).

    Returns:
        An :class:`EfficiencyReport`: ``{name: row}``, each row with ``params`` (every
        weight's scalars), ``nonzeros``, ``sparsity``, ``file_bytes`` and ``gzip_bytes``
        (the ``.unidl`` file without optimizer state, plain and gzipped), ``accuracy``,
        ``latency_ms`` (predict over all of ``x``), ``per_sample_us``, and against the
        first model ``size_ratio``,
        ``gzip_ratio`` (how many times smaller), ``speedup`` and ``accuracy_change``; and
        ``note``. A model with pruning wrappers is measured after
        :func:`unidl.pruning.strip_pruning` (its note says so).
    """
    entries = _entries(model, baseline, models)
    if data is None:
        raise ValueError("efficiency.report: data is required: (x, y) or x")
    x, y = (data[0], data[1]) if isinstance(data, (tuple, list)) and len(data) == 2 else (data,
                                                                                          None)
    x = np.asarray(x)
    if y is not None and len(np.asarray(y)) != len(x):
        raise ValueError(f"efficiency.report: data has {len(x)} inputs but "
                         f"{len(np.asarray(y))} labels")
    rows = EfficiencyReport()
    for name, entry in entries.items():
        rows[name] = _measure(_as_model(entry, name), x, y, batch_size, repeats)
    _compare(rows)
    if print_fn is not None:
        print_fn(rows.table())
    return rows


def _entries(model, baseline, models) -> dict:
    if models is not None:
        if model is not None or baseline is not None:
            raise ValueError("efficiency.report: give models={...} or model (and baseline), "
                             "not both")
        if not isinstance(models, dict) or not models:
            raise ValueError("efficiency.report: models must be a non-empty dict {name: model "
                             f"or file}}, got {models!r}")
        return {str(k): v for k, v in models.items()}
    if model is None:
        raise ValueError("efficiency.report: give a model (or models={name: model})")
    return {"baseline": baseline, "model": model} if baseline is not None else {"model": model}


# -- the command line: ``unidl efficiency`` --------------------------------------------------
def load_data(name: str, data_dir=None, samples=None):
    """``(x, y)`` for the command line's ``--data``: ``"mnist"`` (the 2,000 test images of
    ``mnist.load_data(split=0.2)``, from ``data_dir``, scaled to [0, 1]), ``"digits"`` (the
    360 test images of the 8x8 digits, scaled to [0, 1]) or a ``.npz`` file holding ``x``
    and ``y`` (or ``x_test`` and ``y_test``); the first ``samples`` of them if given."""
    if name == "mnist":
        from unidl.datasets import mnist

        _, (x, y) = mnist.load_data(data_dir, split=0.2, download=False, verbose=0)
        x = x.astype(np.float32) / 255.0
    elif name == "digits":
        from unidl.datasets import digits

        _, (x, y) = digits.load_data()
        x = np.asarray(x, np.float32) / 16.0
    elif name.endswith(".npz"):
        with np.load(name, allow_pickle=False) as f:
            keys = ("x", "y") if "x" in f else ("x_test", "y_test")
            if not all(k in f for k in keys):
                raise ValueError(f"--data {name!r}: expected arrays 'x' and 'y' (or 'x_test' "
                                 f"and 'y_test'), the file holds {sorted(f.files)}")
            x, y = f[keys[0]], f[keys[1]]
    else:
        raise ValueError(f"--data: expected mnist, digits or a .npz file, got {name!r}")
    return (x, y) if samples is None else (x[:samples], y[:samples])


def add_parser(sub) -> None:
    """Add ``unidl efficiency`` to the ``unidl`` command's subparsers."""
    e = sub.add_parser(
        "efficiency", help="compare saved models: size, non-zeros, accuracy, latency",
        description="Measure saved models (.unidl files) on the same data: parameters, "
                    "non-zero weights, file size (plain and gzipped), accuracy and predict "
                    "latency, each compared with the first file. See docs/efficiency.md.")
    e.add_argument("model_files", metavar="MODEL_FILE", nargs="+",
                   help=".unidl files from model.save() (the first is the reference)")
    e.add_argument("--data", default="mnist",
                   help="mnist (default), digits, or a .npz file with x and y")
    e.add_argument("--data-dir", metavar="DIR", help="directory holding the MNIST IDX files "
                   "(default: $UNIDL_DATA_DIR/mnist)")
    e.add_argument("--samples", type=int, metavar="N", help="use the first N samples only")
    e.add_argument("--batch-size", type=int, default=256, metavar="B")
    e.add_argument("--repeats", type=int, default=3, metavar="R",
                   help="timed predict runs (the fastest is reported; default 3)")
    e.add_argument("--backend", help="backend to run on (default: $UNIDL_BACKEND, else numpy)")
    e.add_argument("--json", metavar="FILE", help="also write the report as JSON")
    e.set_defaults(func=main)


def main(args) -> int:
    """``unidl efficiency``'s work (``args`` from :func:`add_parser`'s parser)."""
    import json

    import unidl

    try:
        data = load_data(args.data, args.data_dir, args.samples)
        for path in args.model_files:
            if not os.path.isfile(path):
                raise FileNotFoundError(f"model file {path!r} does not exist")
        names = {}
        for path in args.model_files:  # the file names, made unique
            name, n = os.path.basename(path), 1
            while name in names:
                n += 1
                name = f"{os.path.basename(path)} ({n})"
            names[name] = path
        with unidl.use_backend(args.backend or unidl.backend_name()):
            result = report(models=names, data=data, batch_size=args.batch_size,
                            repeats=args.repeats)
    except (OSError, ValueError) as exc:
        print(f"unidl efficiency: {exc}", file=sys.stderr)
        return 2
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(dict(result), fh, indent=1)
        print(f"report written to {args.json}")
    return 0
