"""fit, evaluate and predict fed from everything users bring, on every backend: arrays, a
unidl.data.Dataset, a generator, a PyDataset-like sequence, a torch DataLoader and a
tf.data.Dataset; steps_per_epoch, validation from a source, class_weight, sample weights
from batches, and the errors."""

from __future__ import annotations

import io
import re
import warnings

import numpy as np
import pytest

import unidl
from unidl import layers, ops
from unidl.data import Dataset
from unidl.data.adapters import _Converter

N, BATCH, STEPS = 256, 32, 8
KINDS = ["arrays", "dataset", "generator", "sequence", "dataloader", "tf_data"]


def _data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(N, 8)).astype("float32")
    y = (x @ rng.normal(size=8) > 0).astype("int64")
    return x, y


def _model():
    unidl.random.set_seed(0)
    model = unidl.Sequential([layers.Dense(16, activation="relu", input_shape=(8,)),
                              layers.Dense(2, activation="softmax")])
    model.compile(unidl.optimizers.Adam(0.02), "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


class Batches:
    """A keras.utils.PyDataset-like sequence: ``__len__`` and ``__getitem__``."""

    def __init__(self, x, y, w=None):
        self.x, self.y, self.w, self.epochs_ended = x, y, w, 0

    def __len__(self):
        return len(self.x) // BATCH

    def __getitem__(self, i):
        part = slice(i * BATCH, (i + 1) * BATCH)
        if self.w is None:
            return self.x[part], self.y[part]
        return self.x[part], self.y[part], self.w[part]

    def on_epoch_end(self):
        self.epochs_ended += 1


def _looping(x, y):
    while True:
        for i in range(0, len(x), BATCH):
            yield x[i:i + BATCH], y[i:i + BATCH]


def _source(kind, x, y, shuffle=True):
    """``(fit arguments, whether a one-shot generator)`` feeding ``x, y`` as ``kind``."""
    if kind == "arrays":
        return {"x": x, "y": y, "batch_size": BATCH, "shuffle": shuffle}
    if kind == "dataset":
        ds = Dataset.from_tensor_slices((x, y))
        ds = ds.shuffle(N) if shuffle else ds
        return {"x": ds.batch(BATCH).prefetch(2)}
    if kind == "generator":
        return {"x": _looping(x, y), "steps_per_epoch": len(x) // BATCH}
    if kind == "sequence":
        return {"x": Batches(x, y), "shuffle": shuffle}
    if kind == "dataloader":
        torch = pytest.importorskip("torch")
        from torch.utils.data import DataLoader, TensorDataset

        pairs = TensorDataset(torch.from_numpy(x), torch.from_numpy(y))
        return {"x": DataLoader(pairs, batch_size=BATCH, shuffle=shuffle)}
    tf = pytest.importorskip("tensorflow")
    ds = tf.data.Dataset.from_tensor_slices((x, y))
    return {"x": (ds.shuffle(N, seed=0) if shuffle else ds).batch(BATCH)}


class StepCounter(unidl.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.counts = getattr(self, "counts", []) + [0]

    def on_train_batch_begin(self, batch, logs=None):
        self.counts[-1] += 1


@pytest.mark.parametrize("kind", KINDS)
def test_fit_trains_from_every_kind_of_input(backend, kind):
    x, y = _data()
    model, counter = _model(), StepCounter()
    history = model.fit(epochs=3, verbose=0, callbacks=[counter], **_source(kind, x, y))
    losses = history.history["loss"]
    assert losses[-1] < 0.75 * losses[0], losses
    assert counter.counts == [STEPS] * 3 and counter.params["steps"] == STEPS
    assert history.history["accuracy"][-1] > 0.8


@pytest.mark.parametrize("kind", KINDS)
def test_evaluate_and_predict_from_every_kind_of_input(backend, kind):
    x, y = _data()
    model = _model()
    model.fit(x, y, epochs=1, batch_size=BATCH, verbose=0)
    want = model.evaluate(x, y, batch_size=BATCH, verbose=0, return_dict=True)
    args = _source(kind, x, y, shuffle=False)
    args.pop("shuffle", None)
    args.pop("batch_size", None)
    steps = args.pop("steps_per_epoch", None)
    got = model.evaluate(**args, steps=steps, verbose=0, return_dict=True)
    assert got == pytest.approx(want, rel=1e-5)
    args = _source(kind, x, y, shuffle=False)
    args.pop("y", None)
    args.pop("shuffle", None)
    steps = args.pop("steps_per_epoch", None)
    np.testing.assert_allclose(model.predict(**args, steps=steps, verbose=0),
                               model.predict(x, verbose=0), rtol=1e-5, atol=1e-6)


def test_tensors_of_the_active_backend_pass_through_without_a_copy(backend):
    x, y = _data()
    xt, yt = ops.convert_to_tensor(x[:4]), ops.convert_to_tensor(y[:4])
    xb, yb, wb = _Converter("fit", "float32")(0, (xt, yt))
    assert xb is xt and yb is yt and wb is None
    x64 = ops.convert_to_tensor(x[:4].astype("float64"))
    assert ops.dtype(_Converter("fit", "float32")(0, (x64, yt))[0]) == "float32"


def test_tf_data_and_dataloader_feed_every_backend(backend):
    """A tf.data.Dataset on the torch and NumPy backends, a DataLoader on TensorFlow: the
    other framework's tensors are read with np.asarray, and the model gets its own."""
    x, y = _data()
    for kind in ("dataloader", "tf_data"):
        try:
            args = _source(kind, x, y, shuffle=False)
        except pytest.skip.Exception:
            continue
        xb, yb, _ = _Converter("evaluate", "float32")(0, next(iter(args["x"])))
        assert ops.is_tensor(xb) and ops.is_tensor(yb), kind
        assert ops.dtype(xb) == "float32" and ops.dtype(yb) == "int64", kind
        np.testing.assert_array_equal(ops.to_numpy(xb), x[:BATCH])


# -- steps_per_epoch and how sources end ------------------------------------------------------
def test_infinite_inputs_need_steps_per_epoch(backend):
    x, y = _data()
    model = _model()
    forever = Dataset.from_tensor_slices((x, y)).batch(BATCH).repeat()
    with pytest.raises(ValueError, match=r"^fit: x is an infinite unidl\.data\.Dataset.*"
                                         r"steps_per_epoch=N"):
        model.fit(forever, verbose=0)
    with pytest.raises(ValueError, match=r"^evaluate: .*infinite.*steps=N"):
        model.evaluate(forever, verbose=0)
    counter = StepCounter()
    history = model.fit(forever, steps_per_epoch=5, epochs=4, verbose=0, callbacks=[counter])
    assert counter.counts == [5] * 4 and len(history.history["loss"]) == 4
    assert np.isfinite(model.evaluate(forever, steps=3, verbose=0)[0])
    assert model.predict(forever, steps=2, verbose=0).shape == (2 * BATCH, 2)


def test_a_generator_is_read_once(backend):
    x, y = _data()
    model = _model()
    finite = ((x[i:i + BATCH], y[i:i + BATCH]) for i in range(0, N, BATCH))
    with pytest.raises(ValueError, match=r"^fit: x is a generator.*read only once, and 2 "
                                         r"epochs.*steps_per_epoch=N"):
        model.fit(finite, epochs=2, verbose=0)
    counter = StepCounter()
    model.fit(finite, epochs=1, verbose=0, callbacks=[counter])  # one pass: fine
    assert counter.counts == [STEPS]
    short = ((x[i:i + BATCH], y[i:i + BATCH]) for i in range(0, N, BATCH))
    with pytest.warns(UserWarning, match=r"ran out of data in epoch 2; training stops"):
        history = model.fit(short, steps_per_epoch=6, epochs=5, verbose=0)
    assert len(history.history["loss"]) == 2


def test_a_users_generator_is_left_open_and_empty_sources_are_errors(backend):
    x, y = _data()
    model = _model()
    gen = _looping(x, y)
    model.fit(gen, steps_per_epoch=2, epochs=2, verbose=0)
    assert next(gen)[0].shape == (BATCH, 8)  # (still the caller's, not closed)
    model.fit(gen, steps_per_epoch=2, verbose=0)
    empty = Dataset.from_tensor_slices((x, y)).batch(BATCH).take(0)
    with pytest.raises(ValueError, match=r"^fit: x yielded no batches$"):
        model.fit(empty, verbose=0)
    with pytest.raises(ValueError, match=r"^evaluate: x yielded no batches$"):
        model.evaluate(empty, verbose=0)
    with pytest.raises(ValueError, match=r"^predict got no data$"):
        model.predict(empty, verbose=0)


def test_validation_sources_are_named_in_errors_and_warnings(backend):
    x, y = _data()
    model = _model()
    forever = Dataset.from_tensor_slices((x, y)).batch(BATCH).repeat()
    with pytest.raises(ValueError, match=r"^fit: validation_data is an infinite unidl\.data"
                                         r"\.Dataset.*validation_steps=N"):
        model.fit(x, y, validation_data=forever, verbose=0)
    once = ((x[i:i + BATCH], y[i:i + BATCH]) for i in range(0, 3 * BATCH, BATCH))
    with pytest.raises(ValueError, match=r"^fit: validation_data is a generator.*read only "
                                         r"once.*validation_steps=N"):
        model.fit(x, y, epochs=2, validation_data=once, verbose=0)
    with pytest.warns(UserWarning, match=r"^fit: validation_data ran out of data in epoch 2; "
                                         r"validation stops"):
        history = model.fit(x, y, epochs=3, validation_data=once, validation_steps=2,
                            verbose=0)
    assert len(history.history["loss"]) == 3 and len(history.history["val_loss"]) == 2
    with pytest.raises(ValueError, match=r"^fit: validation_data: batch 0: y has dtype <U1"):
        model.fit(x, y, validation_data=Batches(x, np.array(["a"] * N)), verbose=0)


def test_steps_per_epoch_continues_a_finite_source_across_epochs(backend):
    """As Keras: with steps_per_epoch an epoch takes the next batches; a new pass starts when
    one ends (a re-iterable input), so every batch is used."""
    x, y = _data()
    seen = []

    class Recording(Batches):
        def __getitem__(self, i):
            seen.append(i)
            return super().__getitem__(i)

    model = _model()
    model.fit(Recording(x, y), shuffle=False, steps_per_epoch=3, epochs=4, verbose=0)
    assert seen == [0, 1, 2, 3, 4, 5, 6, 7, 0, 1, 2, 3]


def test_a_sequence_is_shuffled_by_batch_and_told_of_each_epoch(backend):
    x, y = _data()
    order = []

    class Recording(Batches):
        def __getitem__(self, i):
            order.append(i)
            return super().__getitem__(i)

    seq = Recording(x, y)
    unidl.random.set_seed(1)
    _model().fit(seq, epochs=2, verbose=0)
    assert sorted(order[:8]) == sorted(order[8:]) == list(range(8))
    assert order != list(range(8)) * 2
    assert seq.epochs_ended == 2


# -- validation, class weights, sample weights ------------------------------------------------
@pytest.mark.parametrize("kind", ["dataset", "generator", "sequence", "tf_data"])
def test_validation_data_from_a_source(backend, kind):
    x, y = _data()
    model = _model()
    val = _source(kind, x[:64], y[:64], shuffle=False)["x"]
    steps = 2 if kind == "generator" else None
    history = model.fit(x, y, batch_size=BATCH, epochs=3, verbose=0, validation_data=val,
                        validation_steps=steps)
    assert len(history.history["val_loss"]) == 3
    assert history.history["val_loss"][-1] < history.history["val_loss"][0]
    want = model.evaluate(x[:64], y[:64], batch_size=BATCH, verbose=0)[0]
    if kind != "generator":
        assert history.history["val_loss"][-1] == pytest.approx(want, rel=1e-5)


def test_validation_split_needs_arrays(backend):
    x, y = _data()
    with pytest.raises(ValueError, match=r"^fit: validation_split needs arrays.*"
                                         r"validation_data"):
        _model().fit(Dataset.from_tensor_slices((x, y)).batch(8), validation_split=0.2)


def _trained(fit_args, epochs=2):
    model = _model()
    model.compile(unidl.optimizers.SGD(0.1), "sparse_categorical_crossentropy")
    model.fit(epochs=epochs, verbose=0, **fit_args)
    return model.get_weights()


@pytest.mark.parametrize("labels", ["integers", "one-hot", "column"])
def test_class_weight_equals_the_sample_weights_it_stands_for(backend, labels):
    x, y = _data()
    cw = {0: 0.5, 1: 3.0}
    w = np.where(y == 1, 3.0, 0.5).astype("float32")
    target = {"integers": y, "column": y[:, None],
              "one-hot": np.eye(2, dtype="float32")[y]}[labels]
    if labels == "one-hot":
        loss = "categorical_crossentropy"
    else:
        loss = "sparse_categorical_crossentropy"

    def trained(**kwargs):
        model = _model()
        model.compile(unidl.optimizers.SGD(0.1), loss)
        model.fit(epochs=2, verbose=0, shuffle=False, **kwargs)
        return model.get_weights()

    want = trained(x=x, y=target, batch_size=BATCH, sample_weight=w)
    for got in (trained(x=x, y=target, batch_size=BATCH, class_weight=cw),
                trained(x=Dataset.from_tensor_slices((x, target)).batch(BATCH),
                        class_weight=cw)):
        for a, b in zip(got, want):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    both = trained(x=x, y=target, batch_size=BATCH, sample_weight=np.full(N, 2.0, "float32"),
                   class_weight=cw)  # multiplied with sample_weight
    twice = trained(x=x, y=target, batch_size=BATCH, sample_weight=2 * w)
    for a, b in zip(both, twice):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_class_weight_errors(backend):
    x, y = _data()
    model = _model()
    with pytest.raises(ValueError, match=r"^fit: class_weight has no weight for class 1 .*"
                                         r"keys are \[0\]"):
        model.fit(x, y, class_weight={0: 1.0}, verbose=0)
    ds = Dataset.from_tensor_slices((x, y)).batch(BATCH)
    with pytest.raises(ValueError, match=r"^fit: batch 0: class_weight has no weight for "
                                         r"class 1"):
        model.fit(ds, class_weight={0: 1.0}, verbose=0)
    with pytest.raises(ValueError, match=r"class_weight must be a dict"):
        model.fit(x, y, class_weight=[1.0, 2.0], verbose=0)


def test_sample_weight_from_the_third_item_of_batches(backend):
    x, y = _data()
    w = np.linspace(0.0, 2.0, N).astype("float32")
    want = _trained({"x": x, "y": y, "sample_weight": w, "batch_size": BATCH,
                     "shuffle": False})
    for source in (Dataset.from_tensor_slices((x, y, w)).batch(BATCH), Batches(x, y, w)):
        got = _trained({"x": source, "shuffle": False})
        for a, b in zip(got, want):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    ones = _trained({"x": Dataset.from_tensor_slices((x, y)).batch(BATCH)})
    zeros = _trained({"x": Dataset.from_tensor_slices((x, y, np.zeros(N))).batch(BATCH)})
    assert not np.allclose(ones[0], zeros[0])
    np.testing.assert_array_equal(zeros[0], _model().get_weights()[0])  # weight 0: no step


# -- errors ----------------------------------------------------------------------------------
def test_arguments_that_do_not_apply_to_a_source(backend):
    x, y = _data()
    model = _model()
    ds = Dataset.from_tensor_slices((x, y)).batch(BATCH)
    for kwargs, want in [({"batch_size": 16}, r"^fit: batch_size must not be given when x is "
                                              r"a unidl\.data\.Dataset"),
                         ({"y": y}, r"^fit: y must not be given.*carry the targets"),
                         ({"sample_weight": np.ones(N)}, r"^fit: sample_weight must not be "
                                                         r"given.*third item")]:
        with pytest.raises(ValueError, match=want):
            model.fit(ds, verbose=0, **kwargs)
    with pytest.raises(ValueError, match=r"^evaluate: batch_size must not be given"):
        model.evaluate(ds, batch_size=4, verbose=0)
    with pytest.raises(ValueError, match=r"^fit: validation_batch_size must not be given when "
                                         r"validation_data is a unidl\.data\.Dataset"):
        model.fit(x, y, validation_data=ds, validation_batch_size=4, verbose=0)
    with pytest.raises(TypeError, match=r"^fit: x is a object, which unidl cannot read"):
        model.fit(object(), verbose=0)


def _batches(*batches):
    return iter(batches)  # (a list would be arrays: one per model input)


def test_bad_batches_from_a_source_name_the_batch(backend):
    x, y = _data()
    model = _model()
    good = (x[:BATCH], y[:BATCH])
    cases = [
        ((x[:32], y[:31]), r"^fit: batch 1: all inputs, targets and sample weights must have "
                           r"the same number of samples.*got: x has 32, y has 31$"),
        ((x[:32], np.array(["cat"] * 32)), r"^fit: batch 1: y has dtype <U3 \(strings\).*"
                                           r"encode labels as integers"),
        ((x[:32], y[:32], np.ones(30)), r"^fit: batch 1: .*x has 32, y has 32, sample_weight "
                                        r"has 30$"),
        ((x[:32], y[:32], None, None), r"^fit: batch 1 is a tuple of 4 items"),
        (x[:32], r"^fit: batch 1 has no targets: fit needs batches \(x, y\)"),
        (([[1.0, 2.0], [3.0]], y[:2]), r"^fit: batch 1: x\[0\]\[0\] is a scalar"),
    ]
    for bad, want in cases:
        with pytest.raises(ValueError, match=want):
            model.fit(_batches(good, bad), verbose=0)
    with pytest.raises(ValueError, match=r"^evaluate: batch 0: y has dtype <U1"):
        model.evaluate(Batches(x, np.array(["a"] * N)), verbose=0)


def test_progress_bar_shows_the_count_when_the_length_is_unknown(backend, capsys):
    x, y = _data()
    model = _model()
    gen = ((x[i:i + BATCH], y[i:i + BATCH]) for i in range(0, N, BATCH))
    model.fit(gen, epochs=1, verbose=1)
    out = capsys.readouterr().out
    assert re.search(r"^8/8 .*loss: ", out, re.M), out
    model.evaluate(Dataset.from_generator(lambda: _looping(x, y)).take(5), verbose=1)
    assert re.search(r"^5/5 .*loss: ", capsys.readouterr().out, re.M)
    bar = unidl.callbacks.ProgbarLogger(stream=io.StringIO())
    assert bar._bar(3, None, 0.0, {}).startswith("3/? ")
    assert bar._bar(3, 8, 0.0, {}).startswith("3/8 ")


def test_steps_per_execution_with_a_dataset(backend):
    x, y = _data()
    model = _model()
    model.compile(unidl.optimizers.Adam(0.02), "sparse_categorical_crossentropy",
                  steps_per_execution=3)
    ds = Dataset.from_tensor_slices((x, y)).batch(BATCH)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # (no read-only or retrace warnings)
        history = model.fit(ds, epochs=2, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]


def test_deterministic_training_from_a_pipeline_is_the_same_on_every_backend():
    """Deterministic mode: a Dataset with a shuffle, a random map (drawing from
    unidl.random) and prefetch, and a model with dropout give the same loss curve on every
    backend (the draws of the pipeline and of the model keep one order)."""
    from tests.conftest import BACKENDS
    from unidl.tolerances import TRAINING_RTOL

    x, y = _data()

    def noisy(xb, yb):
        noise = unidl.random.host_rng().normal(size=xb.shape).astype("float32")
        return xb + 0.1 * noise, yb

    curves = {}
    unidl.random.set_deterministic(True)
    try:
        for name in BACKENDS:
            with unidl.use_backend(name):
                unidl.random.set_seed(0)
                model = unidl.Sequential([layers.Dense(16, activation="relu",
                                                       input_shape=(8,)),
                                          layers.Dropout(0.3),
                                          layers.Dense(2, activation="softmax")])
                model.compile(unidl.optimizers.SGD(0.1), "sparse_categorical_crossentropy")
                ds = (Dataset.from_tensor_slices((x, y)).shuffle(64).batch(BATCH)
                      .map(noisy, num_parallel_calls=2).prefetch(2))
                losses = curves[name] = []
                cb = unidl.callbacks.LambdaCallback(
                    on_train_batch_end=lambda b, logs, out=losses: out.append(logs["loss"]))
                model.fit(ds, epochs=2, verbose=0, callbacks=[cb])
    finally:
        unidl.random.set_deterministic(False)
    reference = np.array(curves[BACKENDS[0]])
    assert len(reference) == 2 * STEPS
    for name, curve in curves.items():
        np.testing.assert_allclose(curve, reference, rtol=TRAINING_RTOL, atol=0, err_msg=name)
