"""Data-parallel throughput: samples per second of ``fit`` with 1 and 2 worker processes.

``python benchmarks/distributed.py [--backends torch,tensorflow] [--models mlp,cnn]
[--epochs 8] [--batch 128]`` starts, for each backend, model and worker count,
``unidl launch --nproc N`` on this script in worker mode: every worker trains the model
(the loop benchmarks' data: 7,680 samples, global batch ``--batch``) under
:class:`unidl.distribute.DataParallel`; rank 0 reports the median epoch time after the
first (warm-up) epoch. Prints a Markdown table (see ``docs/distributed.md``).

Read the numbers with the machine in mind: on a 2-core CPU machine two workers share the
same two cores the single process used (each worker then runs its framework on one
thread), and the all-reduce goes over loopback, so two workers are not expected to be
faster here; the table shows what the collective costs on top of the compute.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


def worker(args) -> None:
    """One worker: fit ``args.epochs`` epochs, rank 0 writes the epoch times."""
    from loop import loop_data
    from models import build_unidl

    import unidl
    from unidl.distribute import DataParallel

    strategy = DataParallel(timeout=300)
    data = loop_data(args.model)
    unidl.random.set_seed(0)
    with strategy.scope():
        model = build_unidl(args.model)
    times = []
    for _ in range(args.epochs):
        start = time.perf_counter()
        model.fit(data["x"], data["y"], batch_size=args.batch, epochs=1, verbose=0,
                  shuffle=False)
        times.append(time.perf_counter() - start)
    if strategy.is_chief:
        with open(args.out, "w") as f:
            json.dump({"epoch_s": times, "samples": len(data["x"]),
                       "workers": strategy.world_size}, f)


def measure(backend: str, model: str, nproc: int, epochs: int, batch: int) -> dict:
    """Run ``nproc`` workers through ``unidl launch``; the samples per second of the
    median epoch after the first."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "result.json")
        command = [sys.executable, "-m", "unidl", "launch", "--nproc", str(nproc),
                   "--backend", backend, os.path.abspath(__file__), "--worker",
                   "--model", model, "--epochs", str(epochs), "--batch", str(batch),
                   "--out", out]
        env = {**os.environ, "UNIDL_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "2"}
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1200)
        if done.returncode != 0:
            raise RuntimeError(f"{backend} {model} x{nproc}: {done.stdout[-2000:]}"
                               f"{done.stderr[-2000:]}")
        with open(out) as f:
            result = json.load(f)
    epoch = statistics.median(result["epoch_s"][1:] or result["epoch_s"])
    return {"epoch_s": epoch, "samples_per_s": result["samples"] / epoch}


def table(rows) -> str:
    lines = ["| backend | model | 1 process (samples/s) | 2 processes (samples/s) | "
             "2 vs 1 |", "|---|---|---:|---:|---:|"]
    for backend, model, one, two in rows:
        lines.append(f"| {backend} | {model} | {one['samples_per_s']:,.0f} | "
                     f"{two['samples_per_s']:,.0f} | "
                     f"{two['samples_per_s'] / one['samples_per_s']:.2f}x |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="torch,tensorflow")
    parser.add_argument("--models", default="mlp,cnn")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch", type=int, default=128, help="global batch size")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args)
        return 0
    rows = []
    for backend in args.backends.split(","):
        for model in args.models.split(","):
            one, two = (measure(backend, model, n, args.epochs, args.batch) for n in (1, 2))
            rows.append((backend, model, one, two))
            print(f"{backend} {model}: {one['samples_per_s']:.0f} -> "
                  f"{two['samples_per_s']:.0f} samples/s", file=sys.stderr, flush=True)
    print(f"{os.cpu_count()} CPUs, global batch {args.batch}, {args.epochs} epochs "
          "(median after the first)\n")
    print(table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
