"""The programs behind the ``distributed`` check (run as ``python -m`` in subprocesses).

``--role worker`` (each of the workers ``unidl launch`` starts): every model of
:data:`MODELS` takes :data:`STEPS` steps of ``fit`` under a
:class:`~unidl.distribute.DataParallel` strategy, global batch :data:`GLOBAL_BATCH`, and
each worker saves its weights. ``--role reference`` (one plain process): the same models,
seed and data take the same steps on the whole (concatenated) global batches; for the CNN
with per-worker BatchNormalization statistics, each step's gradient is instead the mean of
the per-shard gradients and the moving statistics the mean of the per-shard updates, which
is what data parallelism without synchronized statistics computes.
"""

from __future__ import annotations

import argparse
import os

import numpy as np

STEPS = 5
GLOBAL_BATCH = 32
SEED = 3
#: model name -> (its layers' builder, whether BatchNormalization is per worker)
MODELS = ("mlp", "cnn", "cnn_bn", "cnn_syncbn", "lstm")


def build(name: str):
    """The check's model ``name`` (no dropout: masks cannot match across a split batch)."""
    import unidl
    from unidl import layers

    if name == "mlp":
        body = [layers.Flatten(input_shape=(8, 8)), layers.Dense(64, activation="relu")]
    elif name == "lstm":
        body = [layers.LSTM(16, input_shape=(8, 8))]
    else:
        # (no bias before BatchNormalization: its gradient is rounding noise, which Adam
        # would scale up to steps of the learning rate)
        body = [layers.Reshape((8, 8, 1), input_shape=(8, 8)),
                layers.Conv2D(8, 3, padding="same", use_bias=name == "cnn")]
        if name != "cnn":
            body.append(layers.BatchNormalization(synchronized=name == "cnn_syncbn"))
        body += [layers.Activation("relu"), layers.MaxPooling2D(2),
                 layers.Conv2D(16, 3, activation="relu"), layers.Flatten()]
    return unidl.Sequential(body + [layers.Dense(10, activation="softmax")])


def data():
    """``STEPS`` global batches of the 8x8 digits, in order."""
    import unidl

    (x, y), _ = unidl.datasets.digits.load_data()
    n = STEPS * GLOBAL_BATCH
    return (x[:n] / 16.0).astype("float32"), y[:n].astype("int64")


def compiled(name: str, distribution=None):
    import unidl

    unidl.random.set_seed(SEED)
    model = build(name)
    # (epsilon 1e-3, not 1e-7: a gradient at rounding-noise level, ~1e-8 for the MLP's
    # weights of an input pixel that is almost always 0, would become a step of ~lr/20 whose
    # size depends on that noise; the single process's result moved by 6e-5 in about 1 run
    # of 7, its rounding varying from run to run for a cause not established. Real gradients
    # still take Adam's normalized steps.)
    model.compile(optimizer=unidl.optimizers.Adam(learning_rate=1e-2, epsilon=1e-3),
                  loss="sparse_categorical_crossentropy", distribution=distribution)
    return model


def run_worker(out: str, names, timeout: float) -> None:
    import unidl
    from unidl.distribute import DataParallel

    strategy = DataParallel(timeout=timeout)
    x, y = data()
    for name in names:
        model = compiled(name, strategy)
        model.fit(x, y, batch_size=GLOBAL_BATCH, epochs=1, shuffle=False, verbose=0)
        _save(out, f"{name}-rank{strategy.rank}", model)
    del unidl


def run_reference(out: str, names, world: int) -> None:
    x, y = data()
    for name in names:
        model = compiled(name)
        if name == "cnn_bn":
            _per_shard_steps(model, x, y, world)
        else:
            model.fit(x, y, batch_size=GLOBAL_BATCH, epochs=1, shuffle=False, verbose=0)
        _save(out, f"{name}-reference", model)


def _per_shard_steps(model, x, y, world: int) -> None:
    """Each step: the mean over ``world`` shards of the gradients and of the moving
    statistics (each shard's forward pass in training mode)."""
    from unidl import ops
    from unidl.autodiff.api import variables_value_and_grad
    from unidl.distribute.replicas import shard_rows

    model(ops.convert_to_tensor(x[:1]), training=False)
    model.optimizer.build(model.trainable_weights)
    variables, state = model.trainable_weights, model.non_trainable_weights
    for step in range(STEPS):
        xb = x[step * GLOBAL_BATCH:(step + 1) * GLOBAL_BATCH]
        yb = y[step * GLOBAL_BATCH:(step + 1) * GLOBAL_BATCH]
        start = [np.array(v.numpy()) for v in state]
        grads, stats = [], []
        for r in range(world):
            rows = shard_rows(GLOBAL_BATCH, r, world)
            for v, s in zip(state, start):
                v.assign(ops.convert_to_tensor(s))

            def loss_fn(xs=xb[rows], ys=yb[rows]):
                pred = model(ops.convert_to_tensor(xs), training=True)
                return model.compute_loss(None, ops.convert_to_tensor(ys), pred), None

            _, g = variables_value_and_grad(loss_fn, variables)
            grads.append([ops.to_numpy(t) for t in g])
            stats.append([np.array(v.numpy()) for v in state])
        for v, parts in zip(state, zip(*stats)):
            v.assign(ops.convert_to_tensor(np.mean(parts, axis=0).astype("float32")))
        mean = [ops.convert_to_tensor((sum(parts) / world).astype("float32"))
                for parts in zip(*grads)]
        model.optimizer.apply(mean, variables)


def _save(out: str, stem: str, model) -> None:
    arrays = {f"w{i:03d}": np.asarray(w) for i, w in enumerate(model.get_weights())}
    path = os.path.join(out, f"{stem}.npz")
    np.savez(path + ".tmp.npz", **arrays)
    os.replace(path + ".tmp.npz", path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m unidl_conformance.distributed_worker")
    parser.add_argument("--role", choices=("worker", "reference"), required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--world", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args(argv)
    names = [n for n in args.models.split(",") if n]
    if args.role == "worker":
        run_worker(args.out, names, args.timeout)
    else:
        run_reference(args.out, names, args.world)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
