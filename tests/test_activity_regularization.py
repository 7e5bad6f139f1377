"""Activity regularization is one rule for every layer (applied by the base ``Layer``): the
regularizer's penalty of each output divided by the output's batch size, as Keras 3."""

from __future__ import annotations

import numpy as np
import pytest

import unidl
from tests.conftest import BACKENDS
from unidl import layers, ops, regularizers

RNG = np.random.default_rng(7)
REG = regularizers.L2(0.01)


def _np(t):
    return np.asarray(ops.to_numpy(t))


def _penalty(layer):
    (loss,) = layer.losses  # (no weight regularizers here: the activity penalty only)
    return float(_np(loss))


def _expected(*outputs):
    return sum(0.01 * float(np.sum(_np(o).astype(np.float64) ** 2)) / _np(o).shape[0]
               for o in outputs)


def test_dense_conv_and_embedding_give_the_same_penalty_for_the_same_outputs(backend):
    batch, features, units = 6, 4, 3
    x = RNG.normal(size=(batch, features)).astype("float32")
    dense = layers.Dense(units, activity_regularizer=REG)
    y_dense = dense(x)
    kernel, bias = dense.get_weights()
    # a 1x1 Conv2D with the Dense kernel computes the same outputs
    conv = layers.Conv2D(units, 1, activity_regularizer=REG)
    conv(x.reshape(batch, 1, 1, features))
    conv.set_weights([kernel.reshape(1, 1, features, units), bias])
    y_conv = conv(x.reshape(batch, 1, 1, features))
    np.testing.assert_allclose(_np(y_conv).reshape(batch, units), _np(y_dense), rtol=1e-5,
                               atol=1e-6)
    # an Embedding whose table is the kernel, looked up by one-hot rows' ids
    ids = RNG.integers(0, features, size=batch)
    emb = layers.Embedding(features, units, activity_regularizer=REG)
    emb(ids)
    emb.set_weights([kernel])
    nobias = layers.Dense(units, use_bias=False, activity_regularizer=REG)
    nobias(np.eye(features, dtype="float32")[ids])
    nobias.set_weights([kernel])
    y_emb, y_onehot = emb(ids), nobias(np.eye(features, dtype="float32")[ids])
    np.testing.assert_allclose(_np(y_emb), _np(y_onehot), rtol=1e-6)

    assert _penalty(conv) == pytest.approx(_penalty(dense), rel=1e-5)
    assert _penalty(emb) == pytest.approx(_penalty(nobias), rel=1e-5)
    assert _penalty(dense) == pytest.approx(_expected(y_dense), rel=1e-5)
    assert _penalty(emb) == pytest.approx(_expected(y_emb), rel=1e-5)


def test_recurrent_layers_follow_the_same_rule(backend):
    x = RNG.normal(size=(5, 4, 3)).astype("float32")
    lstm = layers.LSTM(2, activity_regularizer=REG)
    y = lstm(x)
    assert _penalty(lstm) == pytest.approx(_expected(y), rel=1e-5)
    # every output is penalized, the returned states too (Keras 3)
    with_state = layers.GRU(2, return_state=True, activity_regularizer=REG)
    outs = with_state(x)
    total = sum(float(_np(v)) for v in with_state.losses)
    assert len(with_state.losses) == 2
    assert total == pytest.approx(_expected(*outs), rel=1e-5)


def test_the_penalty_does_not_grow_with_the_batch(backend):
    row = RNG.normal(size=(1, 3, 3, 2)).astype("float32")
    conv = layers.Conv2D(2, 3, padding="same", activity_regularizer="l2")
    conv(row)
    one = _penalty(conv)
    conv(np.repeat(row, 8, axis=0))
    assert _penalty(conv) == pytest.approx(one, rel=1e-5)


def test_penalty_is_recomputed_each_call_and_trains(backend):
    model = unidl.Sequential([layers.Conv2D(2, 3, input_shape=(5, 5, 1),
                                            activity_regularizer=REG),
                              layers.Flatten(), layers.Dense(1)])
    model.compile("sgd", "mse")
    x = RNG.normal(size=(8, 5, 5, 1)).astype("float32")
    model(x)
    assert len(model.losses) == 1
    model(x[:2])
    assert len(model.losses) == 1  # cleared at each call, not accumulated
    history = model.fit(x, np.zeros((8, 1), "float32"), epochs=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()


def test_attention_penalizes_its_projections_once_each(backend):
    """As Keras 3: MultiHeadAttention passes the regularizer to its four projections."""
    mha = layers.MultiHeadAttention(num_heads=2, key_dim=3, activity_regularizer=REG)
    q = RNG.normal(size=(4, 5, 6)).astype("float32")
    mha(q, q)
    assert len(mha.losses) == 4


@pytest.mark.parametrize("make", [
    lambda: layers.Dense(2, activity_regularizer="l2"),
    lambda: layers.Conv2D(2, 3, activity_regularizer="l2"),
    lambda: layers.LSTM(2, activity_regularizer="l2"),
    lambda: layers.Embedding(4, 2, activity_regularizer="l2"),
])
def test_activity_regularizer_stays_in_the_config(make):
    config = make().get_config()
    assert config["activity_regularizer"] is not None


def test_unknown_batch_while_tracing_divides_by_the_actual_batch():
    if "tensorflow" not in BACKENDS:
        pytest.skip("tensorflow is not installed")
    import tensorflow as tf

    with unidl.use_backend("tensorflow"):
        dense = layers.Dense(3, activity_regularizer=REG)
        x = RNG.normal(size=(6, 4)).astype("float32")
        dense(x)  # build

        @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32)], autograph=False)
        def run(t):
            y = dense(t)
            return y, dense.losses[0]

        y, loss = run(tf.constant(x))
        assert float(loss) == pytest.approx(_expected(y), rel=1e-5)
