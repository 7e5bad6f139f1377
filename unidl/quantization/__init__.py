"""Post-training int8 quantization: :func:`quantize` (a new model) and ``model.quantize``
(in place, as in Keras 3).

``Dense``, ``Conv1D``, ``Conv2D`` (channels-last, ``groups=1``) and ``Embedding`` layers
become :class:`QuantizedDense`, :class:`QuantizedConv1D`, :class:`QuantizedConv2D` and
:class:`QuantizedEmbedding`: int8 weights, symmetric per output channel (per row for
embeddings); uint8 activations, asymmetric per tensor; exact int32 accumulation (the ops
``quantize``, ``dynamic_quantize``, ``quantized_matmul``, ``quantized_conv2d``; see
``unidl/spec/quant.py``). Without ``calibration_data`` the activation ranges are taken from
each batch at run time (dynamic); with it they are calibrated once, as the minimum and maximum
each layer's input takes over that data in the float model (static). Every other layer keeps
its float weights; those that hold weights are listed in a warning and in the model's
``quantization_report``.

A quantized model predicts bitwise the same on every backend (the last activation aside, when
it is a transcendental such as softmax), saves to ``.unidl`` with its int8 weights stored as
int8, and exports to ONNX (QuantizeLinear / DynamicQuantizeLinear, MatMulInteger,
ConvInteger) that ONNX Runtime runs with the same integers. See ``docs/efficiency.md``.

Example:
    >>> import warnings
    >>> import numpy as np
    >>> import unidl
    >>> from unidl import layers
    >>> from unidl.quantization import quantize
    >>> with unidl.use_backend("numpy"):
    ...     model = unidl.Sequential([layers.Dense(8, activation="relu", input_shape=(4,)),
    ...                               layers.Dense(2)])
    ...     x = np.random.default_rng(0).normal(size=(32, 4)).astype("float32")
    ...     q = quantize(model, "int8", calibration_data=x)
    ...     [type(layer).__name__ for layer in q.layers], q.layers[0].kernel.dtype
    (['QuantizedDense', 'QuantizedDense'], 'int8')
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np

from unidl.quantization.layers import (
    ACTIVATION_MODES,
    QuantizedConv1D,
    QuantizedConv2D,
    QuantizedDense,
    QuantizedEmbedding,
    activation_qparams,
    quantize_weights,
)

# (QuantizationReport, a plain record, is importable but not listed: every class listed here
# is one a saved file may name, and a report is never saved)
__all__ = ["quantize", "quantize_in_place", "MODES", "QuantizationError", "QuantizedDense",
           "QuantizedConv1D", "QuantizedConv2D", "QuantizedEmbedding", "ACTIVATION_MODES",
           "quantize_weights", "activation_qparams"]

#: the quantization modes :func:`quantize` accepts
MODES = ("int8",)

_PREFIX = "unidl.layers>"
_QPREFIX = "unidl.quantization>"


class QuantizationError(ValueError):
    """A model cannot be quantized as asked; the message names the model or layer, what was
    expected and what was given."""


@dataclass
class QuantizationReport:
    """What :func:`quantize` did: the layers quantized (name -> quantized class) and those
    left in float that hold weights (name -> why)."""

    mode: str
    activation_mode: str
    quantized: dict = field(default_factory=dict)
    left_in_float: dict = field(default_factory=dict)


def _check_mode(mode) -> None:
    if mode not in MODES:
        raise QuantizationError(f"quantize: unknown mode {mode!r}; accepted modes: "
                                f"{', '.join(repr(m) for m in MODES)}")


# ---- the architecture: float layer configs rewritten as quantized ones ------------------------
def _conv_reason(cfg, rank):
    if cfg.get("data_format", "channels_last") != "channels_last":
        return "data_format 'channels_first' (only channels_last is quantized)"
    if int(cfg.get("groups", 1)) != 1:
        return f"groups={cfg.get('groups')} (only groups=1 is quantized)"
    return None


def _rewrite_layer(obj, activation_mode):
    """``(new object config, quantized class name)``; ``(None, reason)`` when this layer
    class cannot be quantized as configured; None for a class that is never quantized."""
    cls = obj.get("registered_name", "")
    cfg = obj["config"]
    common = {k: cfg[k] for k in ("name", "trainable") if k in cfg}
    if cls == _PREFIX + "Dense":
        new = {**common, "units": cfg["units"], "activation": cfg.get("activation"),
               "use_bias": cfg.get("use_bias", True), "activation_mode": activation_mode}
        return _obj("QuantizedDense", new), "QuantizedDense"
    if cls in (_PREFIX + "Conv2D", _PREFIX + "Conv1D"):
        rank = 2 if cls.endswith("2D") else 1
        reason = _conv_reason(cfg, rank)
        if reason:
            return None, reason
        name = f"QuantizedConv{rank}D"
        new = {**common, **{k: cfg[k] for k in ("filters", "kernel_size", "strides", "padding",
                                                 "dilation_rate")},
               "activation": cfg.get("activation"), "use_bias": cfg.get("use_bias", True),
               "activation_mode": activation_mode}
        return _obj(name, new), name
    if cls == _PREFIX + "Embedding":
        new = {**common, "input_dim": cfg["input_dim"], "output_dim": cfg["output_dim"],
               "mask_zero": cfg.get("mask_zero", False)}
        return _obj("QuantizedEmbedding", new), "QuantizedEmbedding"
    return None


def _obj(name, config):
    return {"class_name": name, "registered_name": _QPREFIX + name, "config": config}


def _rewrite(value, activation_mode, plan, refused):
    """``value`` (a serialized model) with every quantizable layer replaced."""
    if isinstance(value, list):
        return [_rewrite(v, activation_mode, plan, refused) for v in value]
    if not isinstance(value, dict):
        return value
    if "registered_name" in value and "config" in value:
        got = _rewrite_layer(value, activation_mode)
        if got is not None:
            new, what = got
            lname = value["config"].get("name")
            if new is None:
                refused[lname] = f"{value['class_name']}: {what}"
            else:
                if lname in plan:
                    raise QuantizationError(f"quantize: two layers are named {lname!r}; give "
                                            "the layers unique names")
                plan[lname] = what
                return new
    return {k: _rewrite(v, activation_mode, plan, refused) for k, v in value.items()}


def _walk(layer):
    """``layer`` and every layer nested in it, depth first."""
    yield layer
    for sub in layer.layers:
        yield from _walk(sub)


def _by_name(model) -> dict:
    return {layer.name: layer for layer in list(_walk(model))[1:]}


# ---- calibration ------------------------------------------------------------------------------
def _batches(data, batch_size, steps):
    """Input batches of ``data``: an array (or a tuple ``(x, ...)`` of arrays), or a
    ``unidl.data.Dataset`` / iterable of batches (``x`` or ``(x, y, ...)``)."""
    if isinstance(data, tuple) and data and hasattr(data[0], "shape"):
        data = data[0]
    if hasattr(data, "shape") and not hasattr(data, "__next__"):
        arr = np.asarray(data)
        chunks = (arr[i:i + batch_size] for i in range(0, len(arr), batch_size))
    else:
        chunks = (b[0] if isinstance(b, (tuple, list)) else b for b in data)
    for i, chunk in enumerate(chunks):
        if steps is not None and i >= steps:
            return
        yield chunk


def _calibrate(model, layers, data, batch_size, steps) -> dict:
    """``{layer name: (min, max)}`` of each layer's input over ``data``, in the float model
    (each layer's ``call`` briefly wrapped to record its input)."""
    import functools

    from unidl import ops

    ranges = {layer.name: [math.inf, -math.inf] for layer in layers}

    def recorder(layer, call):
        @functools.wraps(call)
        def recording(inputs, *args, **kwargs):
            arr = np.asarray(ops.to_numpy(inputs), np.float64)
            if arr.size:
                r = ranges[layer.name]
                r[0], r[1] = min(r[0], float(arr.min())), max(r[1], float(arr.max()))
            return call(inputs, *args, **kwargs)
        return recording

    for layer in layers:
        object.__setattr__(layer, "call", recorder(layer, layer.call))
    seen = 0
    try:
        for batch in _batches(data, batch_size, steps):
            model(ops.convert_to_tensor(np.asarray(batch)), training=False)
            seen += 1
    finally:
        for layer in layers:
            del layer.__dict__["call"]
    if not seen:
        raise QuantizationError(f"quantize: calibration_data for model {model.name!r} gave no "
                                "batch; pass a non-empty array or dataset (or None for dynamic "
                                "quantization)")
    return {k: (v[0], v[1]) for k, v in ranges.items()}


# ---- weights ----------------------------------------------------------------------------------
def _assign(var, value):
    var.assign(np.asarray(value).astype(np.dtype(var.dtype)).reshape(tuple(var.shape)))


def _transfer(float_model, qmodel, plan, ranges) -> None:
    """Quantized weights for the quantized layers, the float weights for all others."""
    old, new = _by_name(float_model), _by_name(qmodel)
    for name, layer in new.items():
        src = old[name]
        if name not in plan:
            for w_new, w_old in zip(layer._own_weights, src._own_weights):
                _assign(w_new, w_old.numpy())
            continue
        if isinstance(layer, QuantizedEmbedding):
            q, s = quantize_weights(src.embeddings.numpy(), axis=0)
            _assign(layer.embeddings, q)
            _assign(layer.embeddings_scale, s)
            continue
        q, s = quantize_weights(src.kernel.numpy(), axis=-1)
        _assign(layer.kernel, q)
        _assign(layer.kernel_scale, s)
        if layer.bias is not None:
            _assign(layer.bias, src.bias.numpy())
        if layer.activation_mode == "static":
            scale, zp = activation_qparams(*ranges[name])
            _assign(layer.input_scale, scale)
            _assign(layer.input_zero_point, zp)


def _compile_like(source, target) -> None:
    """Compile ``target`` as ``source`` was (loss, metrics; a fresh optimizer of the same
    configuration), if it was."""
    args = getattr(source, "_compile_args", None)
    if not args or getattr(source, "optimizer", None) is None:
        return
    from unidl.saving.registry import deserialize, serialize

    optimizer = getattr(source.optimizer, "inner_optimizer", source.optimizer)
    target.compile(optimizer=deserialize(serialize(optimizer)), **args)


# ---- the entry points -------------------------------------------------------------------------
def quantize(model, mode="int8", calibration_data=None, *, batch_size=128,
             calibration_steps=None):
    """A copy of ``model`` with int8 layers (see the module docstring); ``model`` is left
    as it is.

    Args:
        model: a built Sequential or functional ``unidl.Model`` (nested models too).
        mode: ``"int8"`` (the one accepted mode, :data:`MODES`).
        calibration_data: None for dynamic quantization; else a representative input:
            an array, a tuple ``(x, y)`` of arrays, a ``unidl.data.Dataset`` or an iterable
            of batches (each ``x`` or ``(x, y, ...)``), for static quantization.
        batch_size: batch size when ``calibration_data`` is an array.
        calibration_steps: at most this many calibration batches (None: all).

    Returns:
        The quantized model, compiled as ``model`` was (a fresh optimizer), with a
        :class:`QuantizationReport` as ``quantization_report``.

    Raises:
        QuantizationError: an unknown mode (naming the accepted ones), a subclassed model
            (its config does not describe its layers), empty calibration data.
    """
    _check_mode(mode)
    from unidl.models.model import Model
    from unidl.saving.model_file import _rebuild, serialize_model

    if not isinstance(model, Model) or (getattr(model, "_graph", None) is None and
                                        not hasattr(model, "_stack")):
        raise QuantizationError(
            f"quantize: model {getattr(model, 'name', model)!r} is not a Sequential or "
            "functional unidl.Model (a subclassed model's config does not describe its "
            "layers); build it with unidl.Sequential or unidl.Model(inputs, outputs)")
    if not model.built:
        raise QuantizationError(f"quantize: model {model.name!r} is not built; call it on a "
                                "batch or give its first layer input_shape=")
    activation_mode = "dynamic" if calibration_data is None else "static"
    plan, refused = {}, {}
    config = _rewrite(serialize_model(model), activation_mode, plan, refused)
    report = QuantizationReport(mode, activation_mode, dict(plan), _left_in_float(model, plan,
                                                                                  refused))
    ranges = {}
    if activation_mode == "static":
        old = _by_name(model)
        calibrated = [old[n] for n, c in plan.items() if c != "QuantizedEmbedding"]
        ranges = _calibrate(model, calibrated, calibration_data, batch_size,
                            calibration_steps) if calibrated else {}
    qmodel = _rebuild("<quantize>", {"model": config, "build_input_shape":
                                     getattr(model, "_saved_input_shape", None)}, None)
    _transfer(model, qmodel, plan, ranges)
    _compile_like(model, qmodel)
    qmodel.quantization_report = report
    if report.left_in_float:
        listed = "; ".join(f"{k} ({v})" for k, v in report.left_in_float.items())
        warnings.warn(f"quantize: {len(report.left_in_float)} layer(s) of model "
                      f"{model.name!r} left in float: {listed}", stacklevel=2)
    return qmodel


def _left_in_float(model, plan, refused) -> dict:
    """Layers holding weights of their own that are not quantized, with the reason."""
    out = {}
    for name, layer in _by_name(model).items():
        if name in plan or not layer._own_weights:
            continue
        out[name] = refused.get(name, f"{type(layer).__name__}: no int8 version (quantized: "
                                      "Dense, Conv1D, Conv2D, Embedding)")
    return out


def quantize_in_place(model, mode="int8", calibration_data=None, **kwargs) -> None:
    """``model.quantize(mode)``: :func:`quantize`, then ``model`` takes the quantized
    layers (its compiled steps are reset; it stays compiled as it was)."""
    q = quantize(model, mode, calibration_data, **kwargs)
    state = model.__dict__
    if hasattr(model, "_stack"):
        state["_stack"] = q._stack
    else:
        state["_graph"] = q._graph
        state["_functional_layers"] = q._graph.layers
    for key in ("_tracked_layers", "_input_spec", "_output_spec", "quantization_report"):
        if key in q.__dict__:
            state[key] = q.__dict__[key]
    state["_steps"] = {}
    _compile_like(model, model)
