"""Layer conformance: every layer's forward pass and gradients (w.r.t. inputs and weights) on
a backend/device/dtype, against the same layer on the reference backend (NumPy unless
:mod:`unidl_conformance.reference` says otherwise) in float64.

The weights are drawn once on the host (``unidl.random.set_seed``) and copied, so both sides
compute with identical parameters. Where a layer has an independent formula-level reference
(Conv2D, LSTM, GRU, BatchNormalization, MultiHeadAttention: ``formulas.py``), the reference
backend's float64 result is also checked against it (in the reference backend's own float64
case).

Tolerances: forward by the ``contraction`` row of :data:`unidl.tolerances.TOLERANCES` for the
dtype (layers are built from matmul/conv), gradients by ``GRAD_TOLERANCES``.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import numpy as np

import unidl
from unidl import ops
from unidl.tolerances import GRAD_TOLERANCES, tolerance
from unidl_conformance.cases import Case, Result, case_seed
from unidl_conformance.compare import compare
from unidl_conformance.reference import reference_backend, reference_device

__all__ = ["LayerCase", "LAYER_CASES", "layer_cases", "run_layer", "LAYER_DTYPES"]

LAYER_DTYPES = ("float32", "float64")


@dataclass
class LayerCase:
    name: str
    make: object  # () -> Layer (called with the backend active)
    inputs: tuple  # input shapes (one per positional input)
    kwargs: dict = field(default_factory=dict)  # call keyword arguments
    grad: bool = True
    formula: object = None  # (layer weights as numpy, inputs) -> expected output
    low: float = -1.0
    high: float = 1.0
    int_input: int = 0  # > 0: integer inputs in [0, int_input) (Embedding)
    deterministic: bool = False  # run in unidl.random's deterministic mode (augmentation)
    compiled: bool = True  # also check inside compile_function (False: a host-side layer)


def _L():
    from unidl import layers

    return layers


def _adapted(layer, data):
    """``layer`` after ``layer.adapt(data)``."""
    layer.adapt(data)
    return layer


@contextlib.contextmanager
def _mode(lc: LayerCase):
    """Deterministic mode for the cases that ask for it (restored afterwards)."""
    if not lc.deterministic:
        yield
        return
    was = unidl.random.is_deterministic()
    unidl.random.set_deterministic(True)
    try:
        yield
    finally:
        unidl.random.set_deterministic(was)


#: the seed of every augmentation layer in the cases (their formulas replay its draws)
AUG_SEED = 1234
#: a fixed batch for Normalization.adapt
_ADAPT = np.linspace(-2.0, 3.0, 24).reshape(6, 4) ** 2


def _preprocessing_cases():
    """Preprocessing and augmentation layers; augmentation runs with ``training=True``, a
    fixed seed and deterministic mode, so both sides draw the same parameters on the host."""
    from unidl_conformance import formulas as F

    L = _L()
    aug = {"kwargs": {"training": True}, "deterministic": True}
    s = AUG_SEED
    mean, variance = [0.5, -1.0, 2.0, 0.0], [4.0, 0.25, 1.0, 2.0]
    return [
        LayerCase("Rescaling", lambda: L.Rescaling(0.5, offset=0.25), ((3, 4, 5),),
                  formula=F.rescaling_layer(0.5, 0.25)),
        LayerCase("Normalization", lambda: L.Normalization(mean=mean, variance=variance),
                  ((3, 4),), formula=lambda w, xs, kw: F.normalization_layer(
                      w, xs, kw, mean, variance)),
        LayerCase("Normalization[adapted]", lambda: _adapted(L.Normalization(), _ADAPT),
                  ((3, 4),), formula=F.normalization_layer),
        LayerCase("Resizing", lambda: L.Resizing(5, 7), ((2, 4, 6, 3),),
                  formula=F.resizing_layer(5, 7)),
        LayerCase("Resizing[nearest]", lambda: L.Resizing(3, 4, interpolation="nearest"),
                  ((2, 6, 5, 2),), formula=F.resizing_layer(3, 4, nearest=True)),
        LayerCase("Resizing[crop_to_aspect_ratio]",
                  lambda: L.Resizing(4, 4, crop_to_aspect_ratio=True), ((2, 5, 8, 2),),
                  formula=F.resizing_layer(4, 4, crop_aspect=True)),
        LayerCase("CenterCrop", lambda: L.CenterCrop(3, 4), ((2, 6, 7, 2),),
                  formula=F.center_crop_layer(3, 4)),
        LayerCase("CategoryEncoding", lambda: L.CategoryEncoding(6, output_mode="count"),
                  ((3, 4),), grad=False, int_input=6,
                  formula=F.category_encoding_layer(6, "count")),
        LayerCase("IntegerLookup", lambda: L.IntegerLookup(vocabulary=[5, 1, 3, 7]),
                  ((3, 4),), grad=False, int_input=8, compiled=False,  # (host-side lookup)
                  formula=F.integer_lookup_layer([5, 1, 3, 7])),
        LayerCase("RandomFlip", lambda: L.RandomFlip(seed=s), ((6, 4, 5, 2),), **aug,
                  formula=F.random_flip_layer(s, "horizontal_and_vertical")),
        LayerCase("RandomFlip[horizontal]", lambda: L.RandomFlip("horizontal"),
                  ((6, 4, 5, 2),), **aug),
        LayerCase("RandomCrop", lambda: L.RandomCrop(3, 4, seed=s), ((2, 6, 7, 2),), **aug,
                  formula=F.random_crop_layer(s, 3, 4)),
        LayerCase("RandomRotation", lambda: L.RandomRotation(0.2, seed=s), ((2, 6, 7, 2),),
                  **aug, formula=F.random_rotation_layer(s, 0.2, "reflect")),
        LayerCase("RandomRotation[constant]",
                  lambda: L.RandomRotation(0.3, fill_mode="constant", seed=s), ((2, 6, 7, 2),),
                  **aug, formula=F.random_rotation_layer(s, 0.3, "constant")),
        LayerCase("RandomTranslation",
                  lambda: L.RandomTranslation(0.3, (-0.2, 0.4), fill_mode="nearest"),
                  ((3, 5, 6, 2),), **aug),
        LayerCase("RandomZoom", lambda: L.RandomZoom(0.4, (-0.2, 0.3), fill_mode="wrap",
                                                     seed=s), ((3, 5, 6, 2),), **aug),
        LayerCase("RandomContrast",
                  lambda: L.RandomContrast(0.5, value_range=(-1, 1), seed=s), ((3, 4, 5, 2),),
                  **aug, formula=F.random_contrast_layer(s, 0.5, (-1, 1))),
        LayerCase("RandomBrightness",
                  lambda: L.RandomBrightness(0.3, value_range=(-1, 1), seed=s),
                  ((3, 4, 5, 2),), **aug, formula=F.random_brightness_layer(s, 0.3, (-1, 1))),
        LayerCase("GaussianNoise", lambda: L.GaussianNoise(0.2, seed=s), ((3, 5),), **aug,
                  formula=F.gaussian_noise_layer(s, 0.2)),
    ]


def _cases():
    from unidl_conformance import formulas as F

    L = _L()
    return [
        LayerCase("Dense", lambda: L.Dense(5, activation="tanh"), ((3, 4),)),
        LayerCase("Flatten", lambda: L.Flatten(), ((2, 3, 4),)),
        LayerCase("Reshape", lambda: L.Reshape((4, 3)), ((2, 3, 4),)),
        LayerCase("Permute", lambda: L.Permute((2, 1)), ((2, 3, 4),)),
        LayerCase("Dropout", lambda: L.Dropout(0.5), ((3, 4),)),
        LayerCase("Activation", lambda: L.Activation("gelu"), ((3, 4),)),
        LayerCase("Conv1D", lambda: L.Conv1D(4, 3, padding="same"), ((2, 7, 3),)),
        LayerCase("Conv2D", lambda: L.Conv2D(4, 3, strides=2, padding="same"), ((2, 7, 7, 3),),
                  formula=F.conv2d_layer),
        LayerCase("Conv2DTranspose", lambda: L.Conv2DTranspose(3, 3, strides=2),
                  ((2, 4, 4, 2),)),
        LayerCase("DepthwiseConv2D", lambda: L.DepthwiseConv2D(3, depth_multiplier=2),
                  ((2, 6, 6, 3),)),
        LayerCase("DepthwiseConv2D[same]", lambda: L.DepthwiseConv2D(3, padding="same"),
                  ((2, 5, 5, 3),)),
        LayerCase("SeparableConv2D", lambda: L.SeparableConv2D(4, 3), ((2, 6, 6, 3),)),
        LayerCase("MaxPooling1D", lambda: L.MaxPooling1D(2), ((2, 6, 3),)),
        LayerCase("MaxPooling2D", lambda: L.MaxPooling2D(2), ((2, 6, 6, 3),)),
        LayerCase("AveragePooling1D", lambda: L.AveragePooling1D(2), ((2, 6, 3),)),
        LayerCase("AveragePooling2D", lambda: L.AveragePooling2D(2), ((2, 6, 6, 3),)),
        LayerCase("GlobalAveragePooling1D", lambda: L.GlobalAveragePooling1D(), ((2, 6, 3),)),
        LayerCase("GlobalAveragePooling2D", lambda: L.GlobalAveragePooling2D(),
                  ((2, 5, 5, 3),)),
        LayerCase("GlobalMaxPooling1D", lambda: L.GlobalMaxPooling1D(), ((2, 6, 3),)),
        LayerCase("GlobalMaxPooling2D", lambda: L.GlobalMaxPooling2D(), ((2, 5, 5, 3),)),
        LayerCase("ZeroPadding2D", lambda: L.ZeroPadding2D(1), ((2, 4, 4, 3),)),
        LayerCase("UpSampling2D", lambda: L.UpSampling2D(2), ((2, 3, 3, 2),)),
        LayerCase("BatchNormalization", lambda: L.BatchNormalization(), ((6, 5),),
                  kwargs={"training": True}, formula=F.batch_norm_training),
        LayerCase("BatchNormalization[inference]", lambda: L.BatchNormalization(), ((6, 5),),
                  kwargs={"training": False}, formula=F.batch_norm_inference),
        LayerCase("LayerNormalization", lambda: L.LayerNormalization(), ((3, 6),)),
        LayerCase("Embedding", lambda: L.Embedding(10, 4), ((3, 5),), int_input=10),
        LayerCase("SimpleRNN", lambda: L.SimpleRNN(4, return_sequences=True), ((2, 5, 3),)),
        LayerCase("LSTM", lambda: L.LSTM(4, return_sequences=True), ((2, 5, 3),),
                  formula=F.lstm_layer),
        LayerCase("GRU", lambda: L.GRU(4, return_sequences=True), ((2, 5, 3),),
                  formula=F.gru_layer),
        LayerCase("Bidirectional", lambda: L.Bidirectional(L.LSTM(3)), ((2, 4, 3),)),
        LayerCase("MultiHeadAttention", lambda: L.MultiHeadAttention(2, 3), ((2, 4, 5),
                                                                              (2, 6, 5)),
                  formula=F.mha_layer),
        LayerCase("MultiHeadAttention[causal]", lambda: L.MultiHeadAttention(2, 3),
                  ((2, 4, 5), (2, 4, 5)), kwargs={"use_causal_mask": True},
                  formula=F.mha_layer_causal),
        LayerCase("Add", lambda: L.Add(), ((3, 4), (3, 4)), kwargs={"_list": True}),
        LayerCase("Multiply", lambda: L.Multiply(), ((3, 4), (3, 4)), kwargs={"_list": True}),
        LayerCase("Concatenate", lambda: L.Concatenate(), ((3, 4), (3, 2)),
                  kwargs={"_list": True}),
    ] + _preprocessing_cases()


_CACHE: dict = {}


def all_layer_cases() -> list[LayerCase]:
    if "cases" not in _CACHE:
        _CACHE["cases"] = {c.name: c for c in _cases()}
    return list(_CACHE["cases"].values())


LAYER_CASES = property(all_layer_cases)


def layer_cases(backend: str, device: str, dtypes) -> list[Case]:
    try:
        cases = all_layer_cases()
    except (ImportError, AttributeError):
        return []
    return [Case("layer", backend, device, dt, c.name) for c in cases for dt in dtypes
            if dt in LAYER_DTYPES]


def _inputs(lc: LayerCase, rng):
    if lc.int_input:
        return [rng.integers(0, lc.int_input, size=s) for s in lc.inputs]
    return [rng.uniform(lc.low, lc.high, size=s) for s in lc.inputs]


def _call(layer, lc: LayerCase, xs):
    kwargs = {k: v for k, v in lc.kwargs.items() if k != "_list"}
    if lc.kwargs.get("_list"):
        return layer(list(xs), **kwargs)
    return layer(*xs, **kwargs)


def _run_side(lc: LayerCase, backend, device, dtype, xs_np, weights, cts_np, seed):
    """Build the layer on ``backend`` in ``dtype``; return (output, grads w.r.t. inputs and
    weights, weights as numpy)."""
    with unidl.use_backend(backend), unidl.device(device), np.errstate(all="ignore"), \
            _mode(lc):
        unidl.random.set_seed(seed)
        layer = lc.make()
        layer.dtype = dtype
        xs = [ops.convert_to_tensor(x if lc.int_input else x, None if lc.int_input else dtype)
              for x in xs_np]
        out = _call(layer, lc, xs)
        if weights is not None:
            layer.set_weights(weights)
        w_np = layer.get_weights()
        variables = layer.trainable_weights
        float_inputs = [] if lc.int_input else xs

        def f(inputs, wvars):
            y = _call(layer, lc, inputs if float_inputs else xs)
            return y

        if lc.grad:
            outs, vjp_fn = unidl.vjp(f, float_inputs, variables)
            gx, gw = vjp_fn(ops.convert_to_tensor(cts_np, dtype))
            grads = [ops.to_numpy(g) for g in list(gx) + list(gw)]
        else:
            outs, grads = f(float_inputs, variables), []
        _COMPILED[backend] = _compiled_forward(layer, lc, xs)
        return ops.to_numpy(outs), grads, w_np, out


_COMPILED: dict = {}


def _compiled_forward(layer, lc: LayerCase, xs):
    """The forward pass inside the backend's ``compile_function``, for backends that compile
    ``Model``'s steps by default (``tf.function``): graph optimizers fuse kernels there
    (oneDNN's fused BiasAdd+Relu, padded depthwise+BiasAdd...), which an eager run never
    sees. None where the backend runs eagerly or the layer draws randomness (a traced step
    uses the backend's generator, so its result differs by design)."""
    be = unidl.current_backend()
    if not be.compile_by_default or lc.deterministic or not lc.compiled:
        return None
    step = be.compile_function(lambda *inputs: _call(layer, lc, list(inputs)))
    return ops.to_numpy(step(*xs))


def _output_shape(lc: LayerCase, xs_np, seed):
    """The shape of the layer's output, computed on the reference backend in float64."""
    with unidl.use_backend(reference_backend()), unidl.device(reference_device()), _mode(lc):
        unidl.random.set_seed(seed)
        probe = lc.make()
        probe.dtype = "float64"
        return ops.shape(_call(probe, lc, [ops.convert_to_tensor(
            x, None if lc.int_input else "float64") for x in xs_np]))


def _run_both(lc: LayerCase, case: Case, xs_np, rng, seed):
    """``(y, grads, weights)`` on the case's backend and ``(y64, grads64)`` on the reference
    backend in float64, from the same weights, inputs and cotangents (rounded to the case's
    dtype)."""
    ref, ref_dev = reference_backend(), reference_device()
    if not lc.grad:
        y64, _, _, _ = _run_side(lc, ref, ref_dev, "float64", xs_np, None, None, seed)
        y, g, w, _ = _run_side(lc, case.backend, case.device, case.dtype, xs_np, None, None,
                               seed)
        return (y, g, w), (y64, [])
    cts = rng.standard_normal(_output_shape(lc, xs_np, seed))
    y, g, w, _ = _run_side(lc, case.backend, case.device, case.dtype, xs_np, None,
                           cts.astype(case.dtype), seed)
    xs_ref = xs_np if lc.int_input else [np.asarray(x, case.dtype).astype(np.float64)
                                         for x in xs_np]
    y64, g64, _, _ = _run_side(lc, ref, ref_dev, "float64", xs_ref,
                               [np.asarray(a, np.float64) for a in w],
                               cts.astype(case.dtype).astype(np.float64), seed)
    return (y, g, w), (y64, g64)


def run_layer(case: Case) -> Result:
    """Compare the layer's output and gradients on ``case``'s backend with the reference
    backend's float64 ones (and, in the reference's own float64 case, the reference with the
    layer's independent formula)."""
    lc = {c.name: c for c in all_layer_cases()}[case.target]
    seed = case_seed("layer", case.target)
    rng = np.random.default_rng(seed)
    xs_np = _inputs(lc, rng)
    rtol, atol = tolerance(case.dtype, "contraction")
    grtol, gatol = GRAD_TOLERANCES[case.dtype]
    result = Result(case, "pass", seed=seed, rtol=rtol, atol=atol)
    ref = reference_backend()
    try:
        _COMPILED.clear()
        (y, g, w), (y64, g64) = _run_both(lc, case, xs_np, rng, seed)
        compiled = _COMPILED.get(case.backend)
    except Exception as exc:
        result.status = "fail"
        result.message = f"{case.target}: raised {type(exc).__name__}: {exc}"
        return result
    # Dropout runs in inference mode here (identity); training masks are backend RNG
    cmp = compare(y, y64, rtol, atol)
    result.ratio, result.max_abs, result.max_rel = cmp.ratio, cmp.max_abs, cmp.max_rel
    if not cmp.ok:
        result.status = "fail"
        result.message = f"{case.target}: forward differs from {ref} float64: {cmp.message}"
        return result
    if compiled is not None:
        cmp = compare(compiled, y64, rtol, atol)
        result.ratio = max(result.ratio, cmp.ratio)
        if not cmp.ok:
            result.status = "fail"
            result.message = (f"{case.target}: forward inside the backend's compiled step "
                              f"differs from {ref} float64: {cmp.message}")
            return result
    for k, (a, b) in enumerate(zip(g, g64)):
        cmp = compare(a, b, grtol, gatol)
        result.ratio = max(result.ratio, cmp.ratio)
        if not cmp.ok:
            result.status = "fail"
            what = "input" if k < len(lc.inputs) and not lc.int_input else "weight"
            result.message = (f"{case.target}: gradient #{k} ({what}) differs from {ref} "
                              f"float64: {cmp.message}")
            return result
    if lc.formula is not None and case.backend == ref and case.dtype == "float64":
        expected = lc.formula([np.asarray(a, np.float64) for a in w], xs_np, lc.kwargs)
        cmp = compare(y64, expected, 1e-9, 1e-9)
        if not cmp.ok:
            result.status = "fail"
            result.message = (f"{case.target}: {ref} float64 forward differs from the "
                              f"independent formula: {cmp.message}")
    return result
