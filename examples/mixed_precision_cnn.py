"""Mixed-precision training of a small CNN on real MNIST images, against float32.

UNIDL_BACKEND=torch python examples/mixed_precision_cnn.py [--policies float32 mixed_float16]
    [--epochs N] [--data DIR] [--json]

For each policy (default: float32, mixed_float16, mixed_bfloat16) it sets the global policy
with ``unidl.mixed_precision.set_global_policy``, builds the same CNN from the same seed,
trains it on the first 8,000 images of the MNIST test set (IDX files) and evaluates it on the
last 2,000; it prints the test accuracy, the seconds per epoch and, under mixed_float16, the
loss scale that ``compile`` set up (a ``LossScaleOptimizer``). The layers' weights stay
float32; the convolutions and matrix products run in float16 / bfloat16; the last layer's
softmax runs in float32 and the model's output is float32. The files
(t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte, gzipped or not) are looked for in
``--data DIR``, ``$UNIDL_DATA_DIR`` (and its ``mnist/``), then ``../shared/data/mnist``
beside the repository; nothing is downloaded.
"""

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mnist_real import find_data  # noqa: E402  (the same lookup of the data)


def build_model():
    """The CNN (built under the current global policy)."""
    import unidl
    from unidl import layers

    return unidl.Sequential([
        layers.Conv2D(16, 3, activation="relu", input_shape=(28, 28, 1)),
        layers.MaxPooling2D(2),
        layers.Conv2D(32, 3, activation="relu"),
        layers.MaxPooling2D(2),
        layers.Flatten(),
        layers.Dense(64, activation="relu"),
        layers.Dense(10, activation="softmax"),
    ])


def train(policy, data, epochs=3, seed=0):
    """Train the CNN under ``policy``; returns a dict of results."""
    import unidl
    from unidl import mixed_precision, ops

    (x_train, y_train), (x_test, y_test) = data
    mixed_precision.set_global_policy(policy)
    try:
        unidl.random.set_seed(seed)
        model = build_model()
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        model.fit(x_train[:256], y_train[:256], epochs=1, batch_size=128, verbose=0)  # warm up
        unidl.random.set_seed(seed)
        model = build_model()
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        start = time.perf_counter()
        model.fit(x_train, y_train, epochs=epochs, batch_size=64, verbose=0)
        seconds = (time.perf_counter() - start) / epochs
        _, accuracy = model.evaluate(x_test, y_test, batch_size=500, verbose=0)
    finally:
        mixed_precision.set_global_policy("float32")
    opt = model.optimizer
    return {"backend": unidl.backend_name(), "policy": policy, "accuracy": float(accuracy),
            "seconds_per_epoch": seconds, "compute_dtype": model.layers[0].compute_dtype,
            "kernel_dtype": model.layers[0].kernel.dtype,
            "output_dtype": ops.dtype(model(x_test[:2])),
            "optimizer": type(opt).__name__,
            "loss_scale": float(opt.scale) if hasattr(opt, "scale") else None}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", metavar="DIR", help="directory holding the MNIST test set")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--policies", nargs="+",
                        default=["float32", "mixed_float16", "mixed_bfloat16"])
    parser.add_argument("--json", action="store_true", help="print one JSON line per policy")
    args = parser.parse_args()
    path = find_data(args.data)

    import unidl

    (x_train, y_train), (x_test, y_test) = unidl.datasets.mnist.load_data(path, split=0.2)
    data = ((x_train[..., None] / 255.0).astype("float32"), y_train), \
        ((x_test[..., None] / 255.0).astype("float32"), y_test)
    for policy in args.policies:
        result = train(policy, data, args.epochs)
        if args.json:
            print(json.dumps(result), flush=True)
            continue
        scale = "" if result["loss_scale"] is None else \
            f" loss scale={result['loss_scale']:g}"
        print(f"backend={result['backend']} policy={policy:<14} test accuracy="
              f"{result['accuracy']:.4f} {result['seconds_per_epoch']:.1f} s/epoch "
              f"(weights {result['kernel_dtype']}, compute {result['compute_dtype']}, "
              f"output {result['output_dtype']}){scale}", flush=True)


if __name__ == "__main__":
    main()
