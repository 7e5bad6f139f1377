"""Shared pieces of the benchmark harness: the timing protocol, the data, the case sizes.

Timing protocol (one process, one case): every variant (``unidl``, ``native`` or ``keras``)
is a zero-argument callable that runs one step *and waits for its result* (the loss as a
Python float, the predictions as a NumPy array). Each variant is first warmed up (compiling,
tracing and allocator warm-up are excluded), then the variants are timed in interleaved
blocks -- A B, B A, A B, ... -- so that slow drifts of the machine's load hit both alike.
A block runs the callable ``n`` times (``n`` chosen so a block lasts about ``block_s``); the
per-step time of a variant is the median over the blocks, and the ratio A / B is the median
of the per-block-pair ratios.
"""

from __future__ import annotations

import gc
import statistics
import time

import numpy as np

BATCH = 128

# name -> (input shape of one example, number of classes)
SHAPES = {
    "mlp": ((784,), 10),
    "cnn": ((28, 28, 1), 10),
    "lstm": ((50, 32), 10),
}

LEARNING_RATE = 1e-3
EPSILON = 1e-7  # Adam's epsilon (Keras' default; given to torch.optim.Adam as well)


def make_data(model: str, batch: int = BATCH, seed: int = 0):
    """One batch ``(x float32, y int64)`` for ``model`` (the same in every process)."""
    rng = np.random.default_rng(seed)
    shape, classes = SHAPES[model]
    x = rng.random((batch,) + shape, dtype=np.float32)
    y = rng.integers(0, classes, size=(batch,)).astype(np.int64)
    return x, y


def interleaved(variants: dict, repeats: int = 10, block_s: float = 0.15,
                warmup: int = 3, min_warmup_s: float = 0.3, budget_s: float | None = None,
                min_repeats: int = 4) -> dict:
    """Time ``variants`` (name -> callable) interleaved; see the module docstring.

    ``budget_s``: when the timed blocks would take longer than this (slow calls: a whole
    ``fit`` epoch of an LSTM), run fewer of them, but at least ``min_repeats``.

    Returns ``{name: {"ms": median ms per step, "min_ms", "blocks": [...], "n": steps per
    block}}`` plus ``"ratios"``: ``{other: median(t_first / t_other)}`` for the first variant
    against each of the others.
    """
    names = list(variants)
    per_call = {}
    for name in names:  # warm-up: compile/trace, then run for at least min_warmup_s
        fn = variants[name]
        for _ in range(warmup):
            fn()
        t0 = time.perf_counter()
        k = 0
        while True:
            fn()
            k += 1
            spent = time.perf_counter() - t0
            if spent >= min_warmup_s or k >= 200:
                break
        per_call[name] = spent / k
    n = {name: max(1, int(round(block_s / max(per_call[name], 1e-7)))) for name in names}
    if budget_s is not None:
        per_round = sum(n[name] * per_call[name] for name in names)
        repeats = max(min_repeats, min(repeats, int(budget_s / max(per_round, 1e-9))))
    blocks = {name: [] for name in names}
    gc.collect()
    for r in range(repeats):
        order = names if r % 2 == 0 else names[::-1]
        for name in order:
            fn, k = variants[name], n[name]
            t0 = time.perf_counter()
            for _ in range(k):
                fn()
            blocks[name].append((time.perf_counter() - t0) / k)
    out = {name: {"ms": 1e3 * statistics.median(blocks[name]),
                  "min_ms": 1e3 * min(blocks[name]),
                  "blocks_ms": [round(1e3 * t, 4) for t in blocks[name]],
                  "n": n[name]} for name in names}
    first = names[0]
    out["ratios"] = {other: statistics.median(a / b for a, b in zip(blocks[first], blocks[other]))
                     for other in names[1:]}
    return out


#: ``(atol, rtol)`` of the agreement check per device kind. On CUDA both sides run torch's
#: default TF32 cuDNN convolutions (inputs rounded to 10 mantissa bits) through different
#: algorithms: the CNN's outputs were 3.0e-4 apart on an H200.
CHECK_TOLERANCE = {"cpu": (2e-4, 2e-3), "cuda": (2e-3, 2e-2)}


def check_close(name: str, a, b, device: str | None = None) -> float:
    """Assert two inference outputs agree (the benchmarked models compute the same thing)
    within the tolerance of ``device`` (``CHECK_TOLERANCE``)."""
    atol, rtol = CHECK_TOLERANCE[(device or "cpu").split(":")[0]]
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise AssertionError(f"{name}: output shapes differ: {a.shape} vs {b.shape}")
    err = float(np.max(np.abs(a - b)))
    if not np.allclose(a, b, atol=atol, rtol=rtol):
        raise AssertionError(f"{name}: unidl and the reference disagree (max abs err {err:.3g})")
    return err
