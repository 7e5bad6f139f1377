"""int8 against float32 inference latency, per backend: ``predict`` over 10,000 samples,
batch 128, for the seed's MLP and a small CNN (28x28x1 inputs, random weights: latency does
not depend on them), static and dynamic int8.

python benchmarks/quantization.py [--backend numpy,torch,tensorflow,onnxruntime] [--repeats 3]
    [--samples 10000] [--json FILE]

Each figure is the best of ``--repeats`` timed runs after one warm-up run (which compiles
the step where the backend compiles); the variants of a model take turns within each
repeat. Prints a Markdown table: milliseconds per ``predict`` call and the int8 / float32
ratio (above 1: int8 is slower).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples"))


def _timed(fn):
    start = time.perf_counter()
    fn()
    return 1000 * (time.perf_counter() - start)


def bench(backend, repeats, samples):
    """``{(model, variant): ms}`` on ``backend``: the variants of a model are timed in turn
    within each repeat (so a burst of load from other processes hits them alike), and each
    keeps its best time."""
    from quantize_mnist import cnn, mlp

    import unidl
    from unidl.quantization import quantize

    x = np.random.default_rng(0).random((samples, 28, 28, 1), dtype=np.float32)
    out = {}
    with unidl.use_backend(backend):
        for build in (mlp, cnn):
            model = build()
            variants = {"float32": model,
                        "int8 static": quantize(model, "int8", calibration_data=x[:512]),
                        "int8 dynamic": quantize(model, "int8")}
            runs = {name: (lambda m=m: m.predict(x, batch_size=128, verbose=0))
                    for name, m in variants.items()}
            out.update({(model.name, name): ms for name, ms in _best_of(runs, repeats).items()})
    return out


def _best_of(runs, repeats):
    """``{name: fastest ms}`` of ``runs`` (name -> callable), each warmed up once (compiling
    the step where the backend does), then timed ``repeats`` times, interleaved."""
    for run in runs.values():
        run()
    best = {name: float("inf") for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            best[name] = min(best[name], _timed(run))
    return best


def bench_onnxruntime(repeats, samples):
    """The same models exported to ONNX (float32, and int8 static) run by ONNX Runtime,
    batch 128: ``{(model, variant): ms}``."""
    import tempfile

    import onnxruntime
    from quantize_mnist import cnn, mlp

    import unidl
    from unidl.quantization import quantize

    x = np.random.default_rng(0).random((samples, 28, 28, 1), dtype=np.float32)
    out = {}
    with unidl.use_backend("numpy"), tempfile.TemporaryDirectory() as tmp:
        for build in (mlp, cnn):
            model = build()
            runs = {}
            for name, m in (("float32", model),
                            ("int8 static", quantize(model, "int8",
                                                     calibration_data=x[:512]))):
                path = m.export(os.path.join(tmp, f"{model.name}_{len(runs)}.onnx"))
                session = onnxruntime.InferenceSession(path)
                runs[name] = (lambda s=session: [s.run(None, {"input": x[i:i + 128]})
                                                 for i in range(0, samples, 128)])
            out.update({(model.name, name): ms for name, ms in _best_of(runs, repeats).items()})
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="numpy,torch,tensorflow,onnxruntime",
                        help="unidl backends, and onnxruntime (the models exported to ONNX)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--samples", type=int, default=10000)
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args(argv)
    rows = []
    for backend in args.backend.split(","):
        run = bench_onnxruntime if backend == "onnxruntime" else bench
        args_ = (args.repeats, args.samples) if backend == "onnxruntime" else \
            (backend, args.repeats, args.samples)
        for (model, variant), ms in run(*args_).items():
            rows.append({"backend": backend, "model": model, "variant": variant, "ms": ms})
    base = {(r["backend"], r["model"]): r["ms"] for r in rows if r["variant"] == "float32"}
    print(f"load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print("| backend | model | variant | ms / predict | vs float32 |")
    print("|---|---|---|---:|---:|")
    for r in rows:
        ratio = r["ms"] / base[(r["backend"], r["model"])]
        r["ratio"] = ratio
        print(f"| {r['backend']} | {r['model']} | {r['variant']} | {r['ms']:.0f} | "
              f"{ratio:.2f}x |")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=1)
    return rows


if __name__ == "__main__":
    main()
