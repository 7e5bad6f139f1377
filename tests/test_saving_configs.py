"""Every public class turns into a JSON config and back (``get_config``/``from_config``), and a
config can only name classes unidl knows: its own and registered ones."""

from __future__ import annotations

import json

import numpy as np
import pytest

import unidl
from unidl import (
    constraints,
    initializers,
    layers,
    losses,
    metrics,
    optimizers,
    regularizers,
    saving,
)
from unidl.optimizers import schedules
from unidl.saving.registry import _builtins

#: constructor arguments for the classes that have required ones (or more telling ones)
ARGS = {
    "Activation": ("tanh",), "Dense": (3,), "Dropout": (0.3,), "Embedding": (10, 4),
    "Conv1D": (2, 3), "Conv2D": (2, 3), "Conv1DTranspose": (2, 3), "Conv2DTranspose": (2, 3),
    "Convolution1D": (2, 3), "Convolution2D": (2, 3), "Convolution1DTranspose": (2, 3),
    "Convolution2DTranspose": (2, 3), "DepthwiseConv1D": (3,), "DepthwiseConv2D": (3,),
    "SeparableConv1D": (2, 3), "SeparableConv2D": (2, 3), "SeparableConvolution1D": (2, 3),
    "SeparableConvolution2D": (2, 3), "GRU": (4,), "LSTM": (4,), "SimpleRNN": (4,),
    "GRUCell": (4,), "LSTMCell": (4,), "SimpleRNNCell": (4,), "Permute": ((2, 1),),
    "RepeatVector": (3,), "Reshape": ((2, 2),), "MultiHeadAttention": (2, 4),
    "CosineDecay": (0.1, 100), "ExponentialDecay": (0.1, 100, 0.9),
    "PiecewiseConstantDecay": ([10, 20], [0.1, 0.01, 0.001]),
    "Rescaling": (1 / 255,), "Resizing": (4, 5), "CenterCrop": (3, 2),
    "CategoryEncoding": (6,), "RandomRotation": (0.2,), "RandomTranslation": (0.1, (-0.2, 0.3)),
    "RandomZoom": (0.2,), "RandomCrop": (3, 4), "RandomContrast": (0.3,),
    "RandomBrightness": (0.2,), "GaussianNoise": (0.1,),
    "ConfusionMatrix": (3,), "MeanIoU": (3,), "PrecisionAtRecall": (0.6,),
    "RecallAtPrecision": (0.7,), "SensitivityAtSpecificity": (0.5,),
    "SpecificityAtSensitivity": (0.4,), "FBetaScore": ("macro", 2.0),
    "R2Score": ("variance_weighted_average", 2), "LossScaleOptimizer": ("adam",),
    "ConstantSparsity": (0.8, 10, 200, 5), "PolynomialDecay": (0.2, 0.8, 0, 100),
    "QuantizedDense": (4,), "QuantizedConv1D": (2, 3), "QuantizedConv2D": (2, 3),
    "QuantizedEmbedding": (5, 3),
}
ABSTRACT = {"LearningRateSchedule", "Lambda", "LossFunctionWrapper", "Layer"}


def _instance(key, cls):
    name = key.rsplit(">", 1)[1]
    if name == "Bidirectional":
        return cls(layers.LSTM(3, return_sequences=True), merge_mode="sum")
    if name == "RNN":
        return cls(layers.GRUCell(3), return_sequences=True)
    if name == "MeanMetricWrapper":
        return cls(metrics.sparse_categorical_accuracy, name="acc")
    if name == "PruneLowMagnitude":
        from unidl.pruning import PolynomialDecay

        return cls(layers.Conv2D(2, 3), PolynomialDecay(0.1, 0.7, 0, 50), structure="channel")
    return cls(*ARGS.get(name, ()))


def _round_trip(obj):
    config = saving.serialize(obj)
    text = json.dumps(config)  # JSON values only
    back = saving.deserialize(json.loads(text))
    assert type(back) is type(obj)
    assert saving.serialize(back) == config
    return back


@pytest.mark.parametrize("key", sorted(k for k in _builtins()
                                       if k.rsplit(">", 1)[1] not in ABSTRACT))
def test_every_public_class_round_trips(key):
    with unidl.use_backend("numpy"):
        _round_trip(_instance(key, _builtins()[key]))


def test_nested_objects_round_trip():
    with unidl.use_backend("numpy"):
        dense = _round_trip(layers.Dense(
            4, activation="gelu", kernel_initializer=initializers.HeNormal(seed=3),
            kernel_regularizer=regularizers.L1L2(0.01, 0.02), activity_regularizer="l2",
            kernel_constraint=constraints.MaxNorm(1.5, axis=0), bias_constraint="non_neg"))
        assert isinstance(dense.kernel_constraint, constraints.MaxNorm)
        assert dense.kernel_constraint.max_value == 1.5
        opt = _round_trip(optimizers.Adam(learning_rate=schedules.ExponentialDecay(
            0.01, 10, 0.5), clipnorm=1.0))
        assert isinstance(opt.get_config()["learning_rate"], schedules.ExponentialDecay)
        _round_trip(losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1))
        _round_trip(metrics.Precision(thresholds=[0.3, 0.6]))
        _round_trip(metrics.AUC(num_thresholds=50, curve="PR"))


def test_constraints_project_after_each_step(backend):
    dense = layers.Dense(3, kernel_constraint="non_neg", kernel_initializer="ones")
    model = unidl.Sequential([layers.Dense(3, input_shape=(2,)), dense])
    model.compile(optimizer=optimizers.SGD(learning_rate=10.0), loss="mse")
    model.fit(np.ones((4, 2), "float32"), np.full((4, 3), -5.0, "float32"), verbose=0)
    assert dense.kernel.numpy().min() >= 0.0  # a large step down, projected back
    norm = constraints.MaxNorm(1.0)(unidl.ops.convert_to_tensor(np.full((4, 2), 3.0, "float32")))
    np.testing.assert_allclose(np.linalg.norm(unidl.ops.to_numpy(norm), axis=0), 1.0, rtol=1e-5)


# -- only known classes are loaded ---------------------------------------------------------------
@saving.register_serializable(package="TestPkg")
class Doubler(layers.Layer):
    def __init__(self, factor=2.0, **kwargs):
        super().__init__(**kwargs)
        self.factor = factor

    def call(self, x):
        return unidl.ops.multiply(x, self.factor)

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


def test_registered_custom_class_round_trips():
    with unidl.use_backend("numpy"):
        back = _round_trip(Doubler(3.0))
    assert back.factor == 3.0
    assert saving.registered_name(Doubler) == "TestPkg>Doubler"


def test_unknown_class_is_an_error_naming_it_and_imports_nothing(monkeypatch):
    import builtins

    imported = []
    real_import = builtins.__import__

    def spy(name, *args, **kwargs):
        imported.append(name)
        return real_import(name, *args, **kwargs)

    config = {"class_name": "system", "registered_name": "os>system", "config": {}}
    monkeypatch.setattr(builtins, "__import__", spy)
    with pytest.raises(saving.SerializationError, match=r"'os>system'.*register_serializable"):
        saving.deserialize(config)
    monkeypatch.undo()
    assert "os" not in imported


def test_custom_objects_resolve_unregistered_classes():
    class Plain(layers.Layer):
        def call(self, x):
            return x

    config = {"class_name": "Plain", "registered_name": "Custom>Plain",
              "config": {"name": "p"}}
    with pytest.raises(saving.SerializationError, match="custom_objects"):
        saving.deserialize(config)
    with unidl.use_backend("numpy"):
        assert isinstance(saving.deserialize(config, {"Plain": Plain}), Plain)


@pytest.mark.parametrize("value, message", [
    (layers.Lambda(lambda x: x), "never saves code"),
    (metrics.MeanMetricWrapper(lambda t, p: t, name="mine"), "never saves"),
])
def test_code_is_never_saved(value, message):
    with pytest.raises(saving.SerializationError, match=message):
        saving.serialize(value)


def test_registering_two_classes_under_one_name_is_an_error():
    with pytest.raises(ValueError, match="already registered"):
        @saving.register_serializable(package="TestPkg", name="Doubler")
        class Other(layers.Layer):
            pass
