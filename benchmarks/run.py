"""Run the benchmarks: ``python benchmarks/run.py [--backend B ...] [--quick] [--out DIR]``.

Measures, on this machine:

* unidl against hand-written PyTorch, TensorFlow and NumPy: train step and inference of an
  MNIST MLP, a small CNN and an LSTM classifier (batch 128), each pair timed interleaved in
  one process (``worker.py native``), one process per backend;
* unidl against Keras 3 on the same models and backend (``worker.py keras``, one process
  per ``KERAS_BACKEND``, needs the ``bench`` extra: ``pip install "unidl[bench]"``);
* what the user calls (``worker.py loop`` / ``loop-keras``, see ``loop.py``): ``fit`` for
  one epoch, ``train_on_batch``, ``evaluate`` and ``predict`` over 10,000 samples, against
  the hand-written loop on the same framework and against Keras 3's same calls;
* ``import unidl`` time (fresh interpreters; no framework may be imported by it);
* the per-op dispatch overhead of a tiny op against calling the framework directly;
* the run time of ``unidl conformance --quick`` (``--conformance full|off`` to change).

Writes ``results.json`` and ``results.md`` to ``--out`` (default ``benchmarks/results``)
and prints the Markdown tables. See ``docs/performance.md``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BACKENDS = ("numpy", "torch", "tensorflow", "jax")
KERAS_BACKENDS = ("torch", "tensorflow", "jax")
MODEL_NAMES = {"mlp": "MNIST MLP", "cnn": "small CNN", "lstm": "LSTM classifier"}

# targets of the benchmarks issue: (suite, backend, model, kind) -> max ratio
def target(suite, backend, model, kind):
    if suite == "loop-native" and backend != "numpy":
        return 1.10
    if suite in ("keras", "loop-keras"):
        return 1.0
    if suite == "native" and backend == "numpy":
        return 1.5
    if suite == "native" and kind == "train" and model in ("mlp", "cnn"):
        return 1.10
    return None


def _env(**extra):
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env.pop("UNIDL_DEVICE", None)
    env.update(extra)
    return env


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _log(msg):
    print(msg, file=sys.stderr, flush=True)


def measure_import(repeats: int, uncached: bool = True) -> dict:
    """``import unidl`` in fresh interpreters (median), and ``import numpy`` alone.

    Measured with a bytecode cache (as after ``pip install``, which compiles the modules; a
    private ``PYTHONPYCACHEPREFIX``, warmed by one discarded run) and, for reference, without
    one (every module compiled from source on each import).
    """
    code = ("import json, sys, time\nt = time.perf_counter()\nimport {mod}\n"
            "dt = time.perf_counter() - t\n"
            "heavy = [m for m in ('torch', 'tensorflow', 'keras', 'jax') if m in sys.modules]\n"
            "print(json.dumps({{'s': dt, 'frameworks': heavy}}))")
    out = {}
    with tempfile.TemporaryDirectory() as cache:
        cached = _env(PYTHONPYCACHEPREFIX=cache)
        cached.pop("PYTHONDONTWRITEBYTECODE", None)
        no_cache = _env(PYTHONDONTWRITEBYTECODE="1", PYTHONPYCACHEPREFIX=cache + "-none")
        cases = [("", cached)] + ([("_no_bytecode_cache", no_cache)] if uncached else [])
        for label, env in cases:
            for mod in ("numpy", "unidl"):
                times, heavy = [], set()
                for i in range(repeats + 1):
                    res = subprocess.run([sys.executable, "-c", code.format(mod=mod)], env=env,
                                         capture_output=True, text=True, check=True, cwd=ROOT)
                    rec = json.loads(res.stdout.strip().splitlines()[-1])
                    heavy.update(rec["frameworks"])
                    if i or label:  # (the first cached run fills the cache)
                        times.append(rec["s"])
                out[mod + label] = {"ms": 1e3 * statistics.median(times),
                                    "frameworks_imported": sorted(heavy)}
    out["unidl_own_ms"] = out["unidl"]["ms"] - out["numpy"]["ms"]
    return out


def run_worker(suite, backend, args, extra_env) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "out.json")
        cmd = [sys.executable, os.path.join(HERE, "worker.py"), suite, "--backend", backend,
               "--models", args.models, "--repeats", str(args.repeats),
               "--block-s", str(args.block_s), "--json", path]
        if suite.startswith("loop"):  # (whole fit epochs of an LSTM: fewer blocks)
            cmd += ["--budget-s", str(args.loop_budget_s)]
        if args.quick:
            cmd += ["--quick"]
        if args.device:
            cmd += ["--device", args.device]
        t0 = time.perf_counter()
        res = subprocess.run(cmd, env=_env(**extra_env), cwd=ROOT)
        if res.returncode != 0:
            raise SystemExit(f"benchmark worker {suite}/{backend} failed (exit {res.returncode})")
        with open(path) as f:
            out = json.load(f)
        out["wall_s"] = time.perf_counter() - t0
        return out


def measure_conformance(mode: str) -> dict:
    cmd = [sys.executable, "-m", "unidl", "conformance", "--no-progress"]
    if mode == "quick":
        cmd.append("--quick")
    _log(f"timing: {' '.join(cmd[1:])}")
    t0 = time.perf_counter()
    res = subprocess.run(cmd, env=_env(), cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    tail = (res.stdout.strip().splitlines() or [""])[-1]
    return {"mode": mode, "seconds": wall, "exit_code": res.returncode, "summary": tail}


def machine() -> dict:
    info = {"platform": platform.platform(), "python": platform.python_version(),
            "cpus": os.cpu_count(), "processor": platform.processor() or platform.machine()}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["processor"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        info["load_average"] = os.getloadavg()
    except OSError:
        pass
    return info


# -- report -----------------------------------------------------------------------------------
def _mark(ratio, limit, strict=False):
    if limit is None:
        return ""
    ok = ratio < limit if strict else ratio <= limit
    return "yes" if ok else "**no**"


def _fmt_ms(ms):
    return f"{ms:.3f}" if ms < 10 else f"{ms:.1f}"


def markdown(report) -> str:
    lines = []
    rows = [r for w in report["workers"] for r in w["results"]]
    native = [r for r in rows if r["suite"] == "native"]
    keras = [r for r in rows if r["suite"] == "keras"]
    dispatch = [r for r in rows if r["suite"] == "dispatch"]
    if native:
        lines += ["### unidl against hand-written code (same process, interleaved)", "",
                  "| backend | model | step | unidl ms | native ms | unidl / native | target "
                  "| met |", "|---|---|---|---:|---:|---:|---:|---|"]
        for r in native:
            lim = target("native", r["backend"], r["model"], r["kind"])
            lines.append(f"| {r['backend']} | {MODEL_NAMES[r['model']]} | {r['kind']} | "
                         f"{_fmt_ms(r['unidl_ms'])} | {_fmt_ms(r['other_ms'])} | "
                         f"{r['ratio']:.2f} | {'' if lim is None else f'<= {lim:.2f}'} | "
                         f"{_mark(r['ratio'], lim)} |")
        lines.append("")
    if keras:
        lines += ["### unidl against Keras 3 (same backend, same process, interleaved)", "",
                  "unidl `train_on_batch` / `predict_on_batch` against Keras `train_on_batch` / "
                  "`predict_on_batch`, NumPy batches in, loss or predictions out.", "",
                  "| backend | model | step | unidl ms | Keras ms | unidl / Keras | faster |",
                  "|---|---|---|---:|---:|---:|---|"]
        for r in keras:
            lines.append(f"| {r['backend']} | {MODEL_NAMES[r['model']]} | {r['kind']} | "
                         f"{_fmt_ms(r['unidl_ms'])} | {_fmt_ms(r['other_ms'])} | "
                         f"{r['ratio']:.2f} | {_mark(r['ratio'], 1.0, strict=True)} |")
        lines.append("")
    lines += _loop_table(rows)
    if dispatch or report.get("import"):
        lines += ["### Overheads", "", "| what | unidl | direct | overhead |",
                  "|---|---:|---:|---:|"]
        imp = report.get("import")
        if imp:
            fw = imp["unidl"]["frameworks_imported"]
            lines.append(f"| `import unidl`, fresh interpreter (frameworks imported: "
                         f"{', '.join(fw) if fw else 'none'}) | {imp['unidl']['ms']:.0f} ms | "
                         f"`import numpy`: {imp['numpy']['ms']:.0f} ms | "
                         f"{imp['unidl_own_ms']:.0f} ms |")
            if "unidl_no_bytecode_cache" in imp:
                lines.append(f"| the same without a bytecode cache (every module compiled) | "
                             f"{imp['unidl_no_bytecode_cache']['ms']:.0f} ms | "
                             f"`import numpy`: {imp['numpy_no_bytecode_cache']['ms']:.0f} ms | |")
        for r in dispatch:
            lines.append(f"| `ops.add` of two 4-element tensors, {r['backend']} | "
                         f"{1e3 * r['unidl_ms']:.2f} us | {1e3 * r['other_ms']:.2f} us | "
                         f"{r['overhead_us']:+.2f} us |")
        conf = report.get("conformance")
        if conf:
            lines.append(f"| `unidl conformance{' --quick' if conf['mode'] == 'quick' else ''}` "
                         f"run time (exit {conf['exit_code']}) | {conf['seconds']:.0f} s | | |")
        lines.append("")
    m = report["machine"]
    vers = {}
    for w in report["workers"]:
        vers.update(w.get("versions", {}))
    device = (report.get("args") or {}).get("device")
    lines.append(f"Machine: {m['processor']}, {m['cpus']} CPUs, {m['platform']}; "
                 + (f"device {device}; " if device else "")
                 + ", ".join(f"{k} {v}" for k, v in sorted(vers.items())) + ". "
                 f"Run took {report['seconds']:.0f} s"
                 + (" (quick mode: fewer, shorter repeats)." if report["quick"] else "."))
    return "\n".join(lines) + "\n"


def _loop_table(rows) -> list:
    """The loop suite's table: one row per (backend, model, call), against the hand-written
    loop and against Keras 3 where both were measured."""
    cells = {}
    for r in rows:
        if r["suite"] in ("loop-native", "loop-keras"):
            cells.setdefault((r["backend"], r["model"], r["kind"]), {})[r["suite"]] = r
    if not cells:
        return []
    lines = ["### What the user calls: fit, train_on_batch, evaluate, predict", "",
             "`fit`: one epoch of 7,680 samples (batch 128, accuracy metric); `evaluate` and "
             "`predict`: 10,000 samples; `train_on_batch`: one batch of 128. Hand-written: the "
             "same framework's loop reading the loss and accuracy every step (`loop.py`).", "",
             "| backend | model | call | unidl ms | hand-written ms | unidl / hand | <= 1.10 "
             "| Keras ms | unidl / Keras | faster |",
             "|---|---|---|---:|---:|---:|---|---:|---:|---|"]
    for (backend, model, call), by in cells.items():
        nat, ker = by.get("loop-native"), by.get("loop-keras")
        row = [backend, MODEL_NAMES[model], f"`{call}`", _fmt_ms((nat or ker)["unidl_ms"])]
        if nat:
            lim = target("loop-native", backend, model, call)
            row += [_fmt_ms(nat["other_ms"]), f"{nat['ratio']:.2f}", _mark(nat["ratio"], lim)]
        else:
            row += ["", "", ""]
        if ker:
            row += [_fmt_ms(ker["other_ms"]), f"{ker['ratio']:.2f}",
                    _mark(ker["ratio"], 1.0, strict=True)]
        else:
            row += ["", "", ""]
        lines.append("| " + " | ".join(row) + " |")
    return lines + [""]


def _run_keras(args, backends, suites, report):
    """The Keras 3 comparisons (one process per ``KERAS_BACKEND``)."""
    if args.no_keras:
        return
    if not _installed("keras"):
        _log("keras is not installed (pip install 'unidl[bench]'): skipping Keras 3")
        return
    for b in (b for b in backends if b in KERAS_BACKENDS):
        env = {"UNIDL_BACKEND": b, "KERAS_BACKEND": b}
        if "keras" in suites:
            _log(f"benchmarking unidl against Keras 3 (KERAS_BACKEND={b})")
            report["workers"].append(run_worker("keras", b, args, env))
        if "loop" in suites:
            _log(f"benchmarking unidl's fit/evaluate/predict against Keras 3 ({b})")
            report["workers"].append(run_worker("loop-keras", b, args, env))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backend", action="append", choices=BACKENDS,
                   help="backend(s) to benchmark (default: every installed one)")
    p.add_argument("--models", default="mlp,cnn,lstm", help="comma-separated: mlp,cnn,lstm")
    p.add_argument("--quick", action="store_true", help="fewer, shorter repeats (< 1 minute)")
    p.add_argument("--no-keras", action="store_true", help="skip the Keras 3 comparison")
    p.add_argument("--no-import", action="store_true", help="skip the import-time measurement")
    p.add_argument("--suites", default="native,keras,loop",
                   help="comma-separated: native (steps), keras (steps), loop (fit, "
                        "train_on_batch, evaluate, predict; against Keras 3 too unless "
                        "--no-keras)")
    p.add_argument("--loop-budget-s", type=float, default=None,
                   help="seconds of timed blocks per loop pair (default 20, 4 with --quick)")
    p.add_argument("--conformance", choices=["off", "quick", "full"], default=None,
                   help="also time `unidl conformance` (--quick, or its default run); "
                        "default: quick, off with --quick")
    p.add_argument("--device", default=None,
                   help="run unidl and the hand-written torch/jax code on this device "
                        "(cuda:0); default: the CPU")
    p.add_argument("--repeats", type=int, default=None, help="timed blocks per variant")
    p.add_argument("--block-s", type=float, default=None, help="seconds per timed block")
    p.add_argument("--out", default=os.path.join(HERE, "results"),
                   help="directory for results.json and results.md")
    p.add_argument("--render", metavar="JSON", help="only print the tables of a results.json")
    args = p.parse_args(argv)
    if args.render:
        with open(args.render) as f:
            sys.stdout.write(markdown(json.load(f)))
        return
    if args.conformance is None:
        args.conformance = "off" if args.quick else "quick"
    if args.repeats is None:
        args.repeats = 3 if args.quick else 16
    if args.block_s is None:
        args.block_s = 0.04 if args.quick else 0.1
    frameworks = {"numpy": "numpy", "torch": "torch", "tensorflow": "tensorflow",
                  "jax": "unidl_jax"}
    backends = args.backend or [b for b in BACKENDS if _installed(frameworks[b])]
    t0 = time.perf_counter()
    report = {"machine": machine(), "quick": args.quick, "args": vars(args), "workers": []}
    if not args.no_import:
        _log("timing: import unidl")
        report["import"] = measure_import(3 if args.quick else 7, uncached=not args.quick)
    suites = args.suites.split(",")
    if args.loop_budget_s is None:
        args.loop_budget_s = 4.0 if args.quick else 20.0
    for b in backends:
        if "native" in suites:
            _log(f"benchmarking unidl against hand-written {b}")
            report["workers"].append(run_worker("native", b, args, {"UNIDL_BACKEND": b}))
        if "loop" in suites:
            _log(f"benchmarking unidl's fit/evaluate/predict against hand-written {b} loops")
            report["workers"].append(run_worker("loop", b, args, {"UNIDL_BACKEND": b}))
    _run_keras(args, backends, suites, report)
    if args.conformance != "off":
        report["conformance"] = measure_conformance(args.conformance)
    report["seconds"] = time.perf_counter() - t0
    md = markdown(report)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(report, f, indent=1)
    with open(os.path.join(args.out, "results.md"), "w") as f:
        f.write(md)
    print(md)
    _log(f"wrote {os.path.join(args.out, 'results.json')} and results.md")


if __name__ == "__main__":
    main()
