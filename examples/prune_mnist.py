"""80 % magnitude pruning with fine-tuning of the Keras MNIST MLP and a small CNN on real
MNIST images (the 10,000-image MNIST test set, split 8,000 / 2,000 as examples/mnist_real.py).

UNIDL_BACKEND=torch python examples/prune_mnist.py [--data DIR] [--model mlp|cnn|both]
    [--epochs N] [--finetune-epochs N] [--sparsity S] [--out DIR] [--quick]

For each model: train it, save it (``<model>_float32.unidl``), prune it with
``unidl.pruning.prune_low_magnitude`` (``PolynomialDecay`` from 50 % to ``--sparsity`` over
the first half of the fine-tuning, then constant), fine-tune it with the
``UpdatePruningStep`` callback, strip the wrappers and save it (``<model>_pruned.unidl``);
then print the sparsity report and ``unidl.efficiency.report`` of both files: accuracy
before and after, sparsity, file sizes (plain and gzipped) and predict latency. The files
are written to ``--out DIR`` (default: $UNIDL_EXAMPLES_OUT, else a temporary directory).
``--quick`` trains on 2,000 images for one epoch (a smoke test; the accuracies are lower).
"""

import argparse
import os
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mnist_real import find_data  # noqa: E402  (the same lookup of the data)


def build(kind):
    import unidl
    from unidl import layers

    if kind == "mlp":  # the seed's (Keras') MNIST MLP
        return unidl.Sequential([
            layers.Flatten(input_shape=(28, 28)),
            layers.Dense(128, activation="relu"),
            layers.Dropout(0.2),
            layers.Dense(10, activation="softmax"),
        ])
    return unidl.Sequential([
        layers.Conv2D(16, 3, activation="relu", input_shape=(28, 28, 1)),
        layers.MaxPooling2D(2),
        layers.Conv2D(32, 3, activation="relu"),
        layers.MaxPooling2D(2),
        layers.Flatten(),
        layers.Dropout(0.2),
        layers.Dense(10, activation="softmax"),
    ])


def run(kind, data, args, out):
    import unidl
    from unidl import efficiency, pruning

    (x_train, y_train), (x_test, y_test) = data
    if kind == "cnn":
        x_train, x_test = x_train[..., None], x_test[..., None]
    unidl.random.set_seed(0)
    model = build(kind)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(x_train, y_train, epochs=args.epochs, batch_size=32, verbose=0)
    float_file = os.path.join(out, f"{kind}_float32.unidl")
    model.save(float_file)

    # masks updated every `every` steps, reaching the final sparsity at `end` (a multiple of
    # `every`: the schedule updates the masks only at multiples of its frequency)
    half = args.finetune_epochs * int(np.ceil(len(x_train) / 32)) // 2
    every = max(1, min(50, half // 4))
    end = max(every, half // every * every)
    schedule = pruning.PolynomialDecay(0.5, args.sparsity, begin_step=0, end_step=end,
                                       frequency=every)
    pruned = pruning.prune_low_magnitude(model, schedule)
    pruned.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                   metrics=["accuracy"])
    pruned.fit(x_train, y_train, epochs=args.finetune_epochs, batch_size=32, verbose=0,
               callbacks=[pruning.UpdatePruningStep()])
    plain = pruning.strip_pruning(pruned)
    pruned_file = os.path.join(out, f"{kind}_pruned.unidl")
    plain.save(pruned_file)

    print(f"\n== {kind.upper()} on {unidl.backend_name()}: sparsity per layer")
    sparsity = pruning.sparsity_report(plain, print_fn=print)
    print(f"\n== {kind.upper()}: the efficiency report")
    result = efficiency.report(models={"float32": float_file, "pruned": pruned_file},
                               data=(x_test, y_test))
    before, after = result["float32"], result["pruned"]
    print(f"{kind} accuracy before={before['accuracy']:.4f} after={after['accuracy']:.4f} "
          f"change={100 * after['accuracy_change']:+.2f} pt "
          f"sparsity={sparsity['total']['prunable_sparsity']:.4f} "
          f"file={before['file_bytes']} -> {after['file_bytes']} bytes "
          f"gzipped={before['gzip_bytes']} -> {after['gzip_bytes']} bytes")
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", metavar="DIR", help="directory holding the MNIST test set")
    parser.add_argument("--model", choices=("mlp", "cnn", "both"), default="both")
    parser.add_argument("--epochs", type=int, default=5, help="training epochs (default 5)")
    parser.add_argument("--finetune-epochs", type=int, default=3,
                        help="pruning and fine-tuning epochs (default 3)")
    parser.add_argument("--sparsity", type=float, default=0.8, help="final sparsity (0.8)")
    parser.add_argument("--out", metavar="DIR", help="where to write the model files")
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    args = parser.parse_args()
    path = find_data(args.data)

    import unidl

    (x_train, y_train), (x_test, y_test) = unidl.datasets.mnist.load_data(path, split=0.2,
                                                                         verbose=0)
    x_train, x_test = x_train.astype("float32") / 255.0, x_test.astype("float32") / 255.0
    if args.quick:
        args.epochs, args.finetune_epochs = 1, 1
        x_train, y_train, x_test, y_test = x_train[:2000], y_train[:2000], x_test[:500], \
            y_test[:500]
    data = ((x_train, y_train), (x_test, y_test))
    out = args.out or os.environ.get("UNIDL_EXAMPLES_OUT")
    with tempfile.TemporaryDirectory() as scratch:
        out = out or scratch
        os.makedirs(out, exist_ok=True)
        for kind in (("mlp", "cnn") if args.model == "both" else (args.model,)):
            run(kind, data, args, out)


if __name__ == "__main__":
    main()
