"""``compile(jit_compile=True)`` on torch (``torch.compile``): what it costs and when it pays.

``python benchmarks/compile.py [--models mlp,cnn,lstm] [--epochs 3]`` builds each model twice
on the torch backend, eager (the default) and with ``jit_compile=True``, from the same
weights, and reports for ``fit`` (7,680 samples, batch 128, one epoch at a time) and
``predict`` (10,000 samples):

* the first call (for ``jit_compile=True`` it includes ``torch.compile``'s tracing and code
  generation, once per shape: the full batches and the shorter last one);
* the steady state: the median of the later calls;
* the break-even point: after how many epochs the compiled model has caught up.

Prints a Markdown table (see ``docs/performance.md``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from loop import BATCH, loop_data  # noqa: E402
from models import build_unidl  # noqa: E402


def _timed(fn):
    t = time.perf_counter()
    fn()
    return (time.perf_counter() - t) * 1e3


def measure(name: str, epochs: int) -> dict:
    """``{"eager"|"compiled": {"fit": [ms per epoch...], "predict": [ms per call...]}}``."""
    data = loop_data(name)
    x, y, xe = data["x"], data["y"], data["x_eval"]
    out, weights = {}, None
    for mode, jit in (("eager", False), ("compiled", True)):
        model = build_unidl(name, metrics=["accuracy"], jit_compile=jit)
        if weights is None:
            model.predict(x[:2], verbose=0)  # (builds the weights, eagerly)
            weights = model.get_weights()
        model.set_weights(weights)
        fit = [_timed(lambda m=model: m.fit(x, y, batch_size=BATCH, epochs=1, verbose=0,
                                            shuffle=False)) for _ in range(epochs)]
        pred = [_timed(lambda m=model: m.predict(xe, batch_size=BATCH, verbose=0))
                for _ in range(epochs)]
        out[mode] = {"fit": fit, "predict": pred}
    return out


def break_even(eager: list, compiled: list) -> str:
    """After how many calls the compiled model's total time is below the eager one's."""
    first_extra = compiled[0] - eager[0]
    saved = statistics.median(eager[1:]) - statistics.median(compiled[1:])
    if first_extra <= 0:
        return "at once"
    if saved <= 0:
        return "never"
    return f"after {1 + first_extra / saved:.0f} calls"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="mlp,cnn,lstm")
    p.add_argument("--epochs", type=int, default=4, help="calls of each (first + steady)")
    args = p.parse_args(argv)
    import unidl

    unidl.set_backend("torch")
    print("| model | call | eager first ms | eager steady ms | compiled first ms | "
          "compiled steady ms | steady speed-up | pays |")
    print("|---|---|---:|---:|---:|---:|---:|---|")
    for name in args.models.split(","):
        r = measure(name, args.epochs)
        for call in ("fit", "predict"):
            e, c = r["eager"][call], r["compiled"][call]
            es, cs = statistics.median(e[1:]), statistics.median(c[1:])
            print(f"| {name} | `{call}` | {e[0]:.0f} | {es:.0f} | {c[0]:.0f} | {cs:.0f} | "
                  f"{es / cs:.2f}x | {break_even(e, c)} |", flush=True)


if __name__ == "__main__":
    main()
