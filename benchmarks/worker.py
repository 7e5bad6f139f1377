"""One benchmark process: ``python benchmarks/worker.py SUITE --backend B --json OUT``.

Suites:

* ``native``: unidl's compiled steps against the hand-written reference of backend ``B``
  (``native_torch``, ``native_tf``, ``native_numpy``), plus the per-op dispatch overhead.
* ``keras``: unidl's ``train_on_batch`` / ``predict`` against Keras 3's ``train_on_batch`` /
  ``predict_on_batch`` on the same backend (``KERAS_BACKEND`` is set by ``run.py``).
* ``loop`` / ``loop-keras``: what the user calls (``fit`` for one epoch, ``train_on_batch``,
  ``evaluate``, ``predict``; ``loop.py``) against the hand-written loops of backend ``B``,
  or against Keras 3's same calls.

Each case builds the unidl model, gives the other side the same initial weights, checks that
both predict the same outputs, then times them interleaved (``common.interleaved``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import check_close, interleaved, make_data  # noqa: E402
from models import build_keras, build_unidl, unidl_steps  # noqa: E402

NATIVE = {"torch": "native_torch", "tensorflow": "native_tf", "numpy": "native_numpy",
          "jax": "native_jax"}
#: the hand-written references that place their model on a device (``--device``)
ON_DEVICE = ("torch", "jax")
#: ``--device`` of this process (``None``: each side's default, the CPU)
DEVICE = {"name": None}


def _on_device() -> dict:
    """Keyword arguments placing a hand-written reference on ``--device``."""
    return {} if DEVICE["name"] is None else {"device": DEVICE["name"]}


def _log(msg):
    print(f"  {msg}", file=sys.stderr, flush=True)


def _versions(backend):
    import numpy as np

    import unidl

    out = {"python": platform.python_version(), "numpy": np.__version__,
           "unidl": getattr(unidl, "__version__", "?")}
    if backend == "torch" or "torch" in sys.modules:
        import torch

        out["torch"] = torch.__version__
        out["torch_threads"] = torch.get_num_threads()
        if DEVICE["name"] and DEVICE["name"].startswith("cuda"):
            out["gpu"] = torch.cuda.get_device_name(DEVICE["name"])
            out["cuda"] = torch.version.cuda
    if backend == "tensorflow" or "tensorflow" in sys.modules:
        import tensorflow as tf

        out["tensorflow"] = tf.__version__
    if backend == "jax" or "jax" in sys.modules:
        import jax

        out["jax"] = jax.__version__
        if DEVICE["name"] and DEVICE["name"].startswith("cuda"):
            out["gpu"] = jax.devices("gpu")[0].device_kind
    if "keras" in sys.modules:
        import keras

        out["keras"] = keras.__version__
    return out


def _time_steps(suite, tag, backend, name, kinds, unidl_steps_, other_steps, timing, err,
                **extra):
    """Time unidl's (train, infer) against the other side's, interleaved, for each kind."""
    results = []
    for kind in kinds:
        if kind == "dispatch":
            continue
        i = 0 if kind == "train" else 1
        t0 = time.perf_counter()
        r = interleaved({"unidl": unidl_steps_[i], suite: other_steps[i]}, **timing)
        _log(f"{tag} {name} {kind}: unidl {r['unidl']['ms']:.3f} ms, {suite} "
             f"{r[suite]['ms']:.3f} ms, ratio {r['ratios'][suite]:.3f} "
             f"({time.perf_counter() - t0:.1f} s)")
        results.append({"suite": suite, "backend": backend, "model": name, "kind": kind,
                        "unidl_ms": r["unidl"]["ms"], "other_ms": r[suite]["ms"],
                        "ratio": r["ratios"][suite], "max_abs_err": err, "detail": r, **extra})
    return results


def run_native(backend, models, kinds, timing):
    import importlib

    import unidl

    unidl.set_backend(backend)
    native = importlib.import_module(NATIVE[backend])
    results = []
    for name in models:
        x, y = make_data(name)
        model = build_unidl(name)
        u_train, u_infer = unidl_steps(model, x, y)
        n_train, n_infer = native.steps(name, model.get_weights(), x, y, **_on_device())
        err = check_close(f"{backend}/{name}", u_infer(), n_infer(), DEVICE["name"])
        results += _time_steps("native", backend, backend, name, kinds, (u_train, u_infer),
                               (n_train, n_infer), timing, err)
    if "dispatch" in kinds:
        a, b = native.dispatch_pair(**_on_device())
        r = interleaved({"unidl": a, "native": b}, repeats=timing["repeats"],
                        block_s=timing["block_s"] / 2, warmup=100, min_warmup_s=0.1)
        _log(f"{backend} dispatch: unidl {1e3 * r['unidl']['ms']:.2f} us, native "
             f"{1e3 * r['native']['ms']:.2f} us")
        results.append({"suite": "dispatch", "backend": backend, "model": "add(4)",
                        "kind": "op", "unidl_ms": r["unidl"]["ms"], "other_ms": r["native"]["ms"],
                        "ratio": r["ratios"]["native"],
                        "overhead_us": 1e3 * (r["unidl"]["ms"] - r["native"]["ms"]),
                        "detail": r})
    return results


def run_keras(backend, models, kinds, timing):
    import numpy as np

    import unidl

    unidl.set_backend(backend)
    results = []
    for name in models:
        x, y = make_data(name)
        model = build_unidl(name)
        kmodel = build_keras(name)
        model._ensure_built(unidl.ops.convert_to_tensor(x))
        kmodel.set_weights(model.get_weights())
        err = check_close(f"keras-{backend}/{name}", model.predict_on_batch(x),
                          kmodel.predict_on_batch(x), DEVICE["name"])

        def u_train(model=model, x=x, y=y):
            return model.train_on_batch(x, y)

        def k_train(kmodel=kmodel, x=x, y=y):
            return kmodel.train_on_batch(x, y)

        def u_infer(model=model, x=x):
            return model.predict_on_batch(x)

        def k_infer(kmodel=kmodel, x=x):
            return np.asarray(kmodel.predict_on_batch(x))

        results += _time_steps("keras", f"keras-{backend}", backend, name, kinds,
                               (u_train, u_infer), (k_train, k_infer), timing, err,
                               keras_jit_compile=getattr(kmodel, "jit_compile", None))
    return results


def _time_calls(suite, tag, backend, name, calls, unidl_side, other_side, timing, err):
    """Time unidl's calls (``loop.CALLS``: fit, train_on_batch...) against the other side's,
    interleaved, one pair at a time."""
    results = []
    for call in calls:
        t0 = time.perf_counter()
        r = interleaved({"unidl": unidl_side[call], suite: other_side[call]}, **timing)
        _log(f"{tag} {name} {call}: unidl {r['unidl']['ms']:.1f} ms, {suite} "
             f"{r[suite]['ms']:.1f} ms, ratio {r['ratios'][suite]:.3f} "
             f"({len(r['unidl']['blocks_ms'])} blocks, {time.perf_counter() - t0:.1f} s)")
        results.append({"suite": f"loop-{suite}", "backend": backend, "model": name,
                        "kind": call, "unidl_ms": r["unidl"]["ms"], "other_ms": r[suite]["ms"],
                        "ratio": r["ratios"][suite], "max_abs_err": err, "detail": r})
    return results


def run_loop(backend, models, calls, timing, against="native"):
    """The loop suite (``loop.py``): unidl's fit/train_on_batch/evaluate/predict against
    the hand-written loops of ``backend`` (``against="native"``) or Keras 3 (``"keras"``,
    ``KERAS_BACKEND`` set by ``run.py``)."""
    import importlib

    import loop

    import unidl

    unidl.set_backend(backend)
    timing = {**timing, "warmup": 2, "min_warmup_s": 0.0}
    results = []
    for name in models:
        data = loop.loop_data(name)
        u_calls, weights = loop.unidl_calls(name, data)
        if against == "keras":
            o_calls = loop.keras_calls(name, data, weights)
        else:
            o_calls = loop.native_calls(importlib.import_module(NATIVE[backend]), name, data,
                                        weights, **_on_device())
        err = loop.check(f"loop-{against}-{backend}/{name}", u_calls, o_calls, DEVICE["name"])
        results += _time_calls(against, f"loop-{against}-{backend}", backend, name, calls,
                               u_calls, o_calls, timing, err)
    return results


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("suite", choices=["native", "keras", "loop", "loop-keras"])
    p.add_argument("--backend", required=True)
    p.add_argument("--models", default="mlp,cnn,lstm")
    p.add_argument("--kinds", default=None,
                   help="native/keras: train,infer,dispatch; loop: fit,train_on_batch,"
                        "evaluate,predict")
    p.add_argument("--budget-s", type=float, default=None,
                   help="cap on the timed blocks of one pair (fewer repeats for slow calls)")
    p.add_argument("--repeats", type=int, default=16)
    p.add_argument("--block-s", type=float, default=0.1)
    p.add_argument("--quick", action="store_true", help="shorter warm-up")
    p.add_argument("--device", default=None,
                   help="run both sides on this device (cuda:0; torch and jax references): "
                        "unidl through UNIDL_DEVICE, the reference placing its model there")
    p.add_argument("--json", required=True)
    args = p.parse_args(argv)
    if args.device is not None:
        if args.suite in ("native", "loop") and args.backend not in ON_DEVICE:
            p.error(f"--device: the hand-written {args.backend} reference runs on the CPU "
                    f"only (placed on a device: {', '.join(ON_DEVICE)})")
        DEVICE["name"] = os.environ["UNIDL_DEVICE"] = args.device
    timing = {"repeats": args.repeats, "block_s": args.block_s}
    if args.quick:
        timing.update(warmup=1, min_warmup_s=0.05)
    if args.budget_s is not None:
        timing["budget_s"] = args.budget_s
    loop_suite = args.suite.startswith("loop")
    default_kinds = "fit,train_on_batch,evaluate,predict" if loop_suite else \
        "train,infer,dispatch"
    models, kinds = args.models.split(","), (args.kinds or default_kinds).split(",")
    t0 = time.perf_counter()
    if loop_suite:
        results = run_loop(args.backend, models, kinds, timing,
                           "keras" if args.suite == "loop-keras" else "native")
    else:
        run = run_native if args.suite == "native" else run_keras
        results = run(args.backend, models, kinds, timing)
    out = {"suite": args.suite, "backend": args.backend, "device": args.device or "cpu",
           "versions": _versions(args.backend),
           "seconds": time.perf_counter() - t0, "results": results}
    with open(args.json, "w") as f:
        json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
