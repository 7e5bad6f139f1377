"""Images per second of an input pipeline: unidl.data against tf.data and a PyTorch DataLoader.

    python benchmarks/data_pipeline.py [--images N] [--repeats R] [--backend NAME]
                                       [--workers W] [--threads T]

The data: ``N`` (default 60,000) random 28x28 uint8 images stored once as raw byte records
(784 bytes each, as a file of records would hold them) with int64 labels. Every pipeline
does, per image: decode (bytes -> uint8 array), normalize to float32 in [0, 1], a random
horizontal flip, pad 4 pixels and a random 28x28 crop, then batches of 128 and prefetching:

* **tf.data**: ``from_tensor_slices(records).map(parse, AUTOTUNE).batch(128)
  .prefetch(AUTOTUNE)`` with ``tf.io.decode_raw``, ``tf.image.random_flip_left_right``,
  ``tf.pad``, ``tf.image.random_crop``, per image;
* **DataLoader**: a map-style ``torch.utils.data.Dataset`` doing the same per image (the
  NumPy function of unidl's per-image row, torch's random numbers),
  ``DataLoader(batch_size=128, num_workers=W)`` (default 2, persistent workers, so their
  start-up is not timed);
* **unidl.data**, three ways: (1) the ``RandomFlip`` and ``RandomCrop`` layers in
  ``Dataset.map`` on batches (``batch(128).map(...)``: decode and normalize vectorized
  over the batch; ``RandomFlip`` decides per image, ``RandomCrop`` picks one window per
  batch, as Keras's layer does); (2) NumPy in ``map`` on batches, with a flip and a crop
  window per image (tf.data's augmentation, vectorized); (3) a NumPy function in a
  per-image ``map`` before ``batch`` (the structure of the tf.data pipeline).

The batched forms are also run with tf.data (``batch(128).map(...)``, TF ops, one crop
window per batch) and with the DataLoader (``__getitem__`` of a list of indices from a
``BatchSampler``, torch ops), so each structure is compared with its like.

Each pipeline runs one warm-up pass, then ``R`` (default 3) timed passes, interleaved
across pipelines; a pass iterates every batch as the consumer receives it (tf.data: TF
tensors; DataLoader: torch tensors; unidl: the active backend's tensors, ``--backend``,
default numpy). Images/s is the median over passes. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BATCH, SIZE, PAD = 128, 28, 4
HEADLINE = "unidl.data: layers, map on batches"


def make_records(n, seed=0):
    """``(records, labels)``: ``n`` random 28x28 images as 784-byte records, and labels."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, SIZE * SIZE), dtype=np.uint8)
    return [row.tobytes() for row in images], rng.integers(0, 10, n).astype(np.int64)


# -- unidl.data ---------------------------------------------------------------------------------
def decode_batch(records):
    """A batch of records (a NumPy ``S784`` array) as float32 images in [0, 1]."""
    pixels = records.view(np.uint8).reshape(-1, SIZE, SIZE, 1)
    return pixels.astype(np.float32) * np.float32(1 / 255)


def padded(x):
    return np.pad(x, ((0, 0), (PAD, PAD), (PAD, PAD), (0, 0)))


def unidl_layers_pipeline(records, labels, threads):
    """(1) The augmentation layers on batches, in ``Dataset.map``."""
    import unidl
    from unidl.data import AUTOTUNE, Dataset

    flip = unidl.layers.RandomFlip("horizontal")
    crop = unidl.layers.RandomCrop(SIZE, SIZE)

    def augment(rec, y):
        with unidl.use_backend("numpy"):  # (host arrays in, host arrays out)
            x = crop(flip(padded(decode_batch(rec)), training=True), training=True)
        return x, y

    return (Dataset.from_tensor_slices((np.array(records), labels)).batch(BATCH)
            .map(augment, num_parallel_calls=threads or AUTOTUNE).prefetch(AUTOTUNE))


def flip_crop(x, rng):
    """A random horizontal flip and a random crop per image of a padded batch (NumPy)."""
    n = len(x)
    x = np.where((rng.random(n) < 0.5)[:, None, None, None], x[:, :, ::-1], x)
    top = rng.integers(0, 2 * PAD + 1, n)[:, None] + np.arange(SIZE)
    left = rng.integers(0, 2 * PAD + 1, n)[:, None] + np.arange(SIZE)
    return x[np.arange(n)[:, None, None], top[:, :, None], left[:, None, :]]


def unidl_numpy_batch_pipeline(records, labels, threads):
    """(2) NumPy, per image, vectorized over the batch in ``Dataset.map``."""
    import unidl
    from unidl.data import AUTOTUNE, Dataset

    rng = unidl.random.host_rng()

    def augment(rec, y):
        return flip_crop(padded(decode_batch(rec)), rng), y

    return (Dataset.from_tensor_slices((np.array(records), labels)).batch(BATCH)
            .map(augment, num_parallel_calls=threads or AUTOTUNE).prefetch(AUTOTUNE))


def augment_image(record, u):
    """One record decoded, normalized, flipped if ``u[0] < 0.5``, padded and cropped at the
    corner ``u[1:]`` (uniforms in [0, 1)): NumPy, channels-last."""
    x = np.frombuffer(record, np.uint8).reshape(SIZE, SIZE, 1)
    out = np.zeros((SIZE + 2 * PAD, SIZE + 2 * PAD, 1), np.float32)
    out[PAD:PAD + SIZE, PAD:PAD + SIZE] = x[:, ::-1] if u[0] < 0.5 else x
    out *= np.float32(1 / 255)
    top, left = int(u[1] * (2 * PAD + 1)), int(u[2] * (2 * PAD + 1))
    return out[top:top + SIZE, left:left + SIZE]


def unidl_numpy_image_pipeline(records, labels, threads):
    """(3) NumPy functions in a per-image ``map``, as the tf.data pipeline is written."""
    import unidl
    from unidl.data import AUTOTUNE, Dataset

    rng = unidl.random.host_rng()

    def parse(rec, y):
        # (NumPy drops the trailing zero bytes of an S784 element: ljust restores them)
        return augment_image(rec.ljust(SIZE * SIZE, b"\0"), rng.random(3)), y

    return (Dataset.from_tensor_slices((np.array(records), labels))
            .map(parse, num_parallel_calls=threads or AUTOTUNE).batch(BATCH)
            .prefetch(AUTOTUNE))


# -- the references -----------------------------------------------------------------------------
def tf_data_pipeline(records, labels):
    import tensorflow as tf

    def parse(rec, y):
        x = tf.reshape(tf.io.decode_raw(rec, tf.uint8), (SIZE, SIZE, 1))
        x = tf.cast(x, tf.float32) / 255.0
        x = tf.image.random_flip_left_right(x)
        x = tf.pad(x, ((PAD, PAD), (PAD, PAD), (0, 0)))
        return tf.image.random_crop(x, (SIZE, SIZE, 1)), y

    ds = tf.data.Dataset.from_tensor_slices((records, labels))
    return ds.map(parse, num_parallel_calls=tf.data.AUTOTUNE).batch(BATCH) \
        .prefetch(tf.data.AUTOTUNE)


def tf_data_batched_pipeline(records, labels):
    """tf.data with the map on batches, as unidl's layers row: a flip decision per image,
    one crop window per batch."""
    import tensorflow as tf

    def augment(rec, y):
        x = tf.reshape(tf.io.decode_raw(rec, tf.uint8), (-1, SIZE, SIZE, 1))
        x = tf.cast(x, tf.float32) / 255.0
        flip = tf.random.uniform((tf.shape(x)[0], 1, 1, 1)) < 0.5
        x = tf.where(flip, tf.reverse(x, [2]), x)
        x = tf.pad(x, ((0, 0), (PAD, PAD), (PAD, PAD), (0, 0)))
        return tf.image.random_crop(x, (tf.shape(x)[0], SIZE, SIZE, 1)), y

    ds = tf.data.Dataset.from_tensor_slices((records, labels))
    return ds.batch(BATCH).map(augment, num_parallel_calls=tf.data.AUTOTUNE) \
        .prefetch(tf.data.AUTOTUNE)


class TorchRecords:
    """The map-style dataset of the DataLoader row (a class at module level: workers pickle
    it)."""

    def __init__(self, records, labels):
        self.records, self.labels = records, labels

    def __len__(self):
        return len(self.records)

    def __getitem__(self, i):
        import torch

        # (the same NumPy function as unidl's per-image row; torch's generator, seeded per
        # worker)
        x = augment_image(self.records[i], torch.rand(3).numpy())
        return torch.from_numpy(np.ascontiguousarray(x)), int(self.labels[i])


class TorchRecordBatches(TorchRecords):
    """Whole batches per ``__getitem__`` (a list of indices from a ``BatchSampler``),
    augmented as unidl's layers row: a flip decision per image, one crop window per batch."""

    def __getitem__(self, indices):
        import torch
        import torch.nn.functional as F

        raw = np.frombuffer(b"".join(self.records[i] for i in indices), np.uint8)
        x = torch.from_numpy(raw.reshape(-1, 1, SIZE, SIZE).copy()).float().div_(255.0)
        flip = torch.rand(len(indices), 1, 1, 1) < 0.5
        x = torch.where(flip, torch.flip(x, (3,)), x)
        x = F.pad(x, (PAD, PAD, PAD, PAD))
        top, left = torch.randint(0, 2 * PAD + 1, (2,)).tolist()
        return x[:, :, top:top + SIZE, left:left + SIZE], torch.from_numpy(self.labels[indices])


def dataloader_batched_pipeline(records, labels, workers):
    from torch.utils.data import BatchSampler, DataLoader, SequentialSampler

    data = TorchRecordBatches(records, labels)
    batches = BatchSampler(SequentialSampler(data), BATCH, drop_last=False)
    return DataLoader(data, batch_size=None, sampler=batches, num_workers=workers,
                      persistent_workers=workers > 0)


def dataloader_pipeline(records, labels, workers):
    from torch.utils.data import DataLoader

    return DataLoader(TorchRecords(records, labels), batch_size=BATCH, num_workers=workers,
                      persistent_workers=workers > 0)


# -- timing -------------------------------------------------------------------------------------
def one_pass(pipeline, n):
    """Seconds to iterate every batch of ``pipeline``; checks the shapes and the count."""
    start, seen = time.perf_counter(), 0
    for xb, _yb in pipeline:
        shape = tuple(xb.shape)
        assert shape[1:] in ((SIZE, SIZE, 1), (1, SIZE, SIZE)), shape
        seen += shape[0]
    elapsed = time.perf_counter() - start
    assert seen == n, (seen, n)
    return elapsed


def measure(pipelines, n, repeats):
    """``{name: [images per second of each timed pass]}``, passes interleaved."""
    for name, pipeline in pipelines.items():  # warm-up: tracing, worker start-up
        print(f"  warm-up: {name}", file=sys.stderr)
        one_pass(pipeline, n)
    rates = {name: [] for name in pipelines}
    for r in range(repeats):
        order = list(pipelines) if r % 2 == 0 else list(reversed(pipelines))
        for name in order:
            rates[name].append(n / one_pass(pipelines[name], n))
    return rates


def table(rates, refs):
    best_ref = max(refs, key=lambda k: statistics.median(rates[k]))
    slow_ref = min(refs, key=lambda k: statistics.median(rates[k]))
    lines = ["| pipeline | images/s (median) | min - max | vs tf.data | vs DataLoader |",
             "|---|---:|---:|---:|---:|"]
    tf_rate, dl_rate = (statistics.median(rates[k]) for k in refs)
    for name, values in rates.items():
        med = statistics.median(values)
        lines.append(f"| {name} | {med:,.0f} | {min(values):,.0f} - {max(values):,.0f} | "
                     f"{med / tf_rate:.2f}x | {med / dl_rate:.2f}x |")
    return "\n".join(lines), best_ref, slow_ref


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=60_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--backend", default="numpy", help="unidl's backend (the consumer)")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers")
    parser.add_argument("--threads", type=int, default=None,
                        help="unidl map threads (default AUTOTUNE: one per CPU)")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.path.insert(0, ROOT)
    import unidl

    unidl.set_backend(args.backend)
    unidl.random.set_seed(0)
    records, labels = make_records(args.images)
    n = args.images
    refs = ("tf.data, per-image map", f"DataLoader, {args.workers} workers, per image")
    pipelines = {
        refs[0]: tf_data_pipeline(records, labels),
        refs[1]: dataloader_pipeline(records, labels, args.workers),
        HEADLINE: unidl_layers_pipeline(records, labels, args.threads),
        "unidl.data: NumPy, map on batches (crop per image)":
            unidl_numpy_batch_pipeline(records, labels, args.threads),
        "unidl.data: NumPy, per-image map":
            unidl_numpy_image_pipeline(records, labels, args.threads),
        "tf.data, map on batches": tf_data_batched_pipeline(records, labels),
        f"DataLoader, {args.workers} workers, batches":
            dataloader_batched_pipeline(records, labels, args.workers),
    }
    rates = measure(pipelines, n, args.repeats)
    text, best, slow = table(rates, refs)
    print(f"\n{n:,} images, batch {BATCH}, unidl backend {args.backend}, "
          f"{os.cpu_count()} CPUs\n")
    print(text)
    ours, fastest, slowest = (statistics.median(rates[k]) for k in (HEADLINE, best, slow))
    verdict = "met" if ours >= slowest else "NOT met"
    print(f"\n{HEADLINE}: {ours / fastest:.2f}x the faster reference ({best}), "
          f"{ours / slowest:.2f}x the slower ({slow}); target (>= the slower): {verdict}")


if __name__ == "__main__":
    main()
