"""``model.export(path, format=...)``: ONNX, ``torch.export`` (.pt2) and SavedModel artifacts of
models built and trained on each backend, run where ``import unidl`` fails, against the
model's own ``predict``; the export errors; every ONNX op rule against the spec's samples.

The artifacts of one format are loaded and run in one subprocess (one framework import for
all of them) whose ``sys.path`` starts with a folder holding a ``unidl.py`` that raises
ImportError. Outputs are compared at float32 tolerance (rtol 1e-4, atol 1e-5) for batches of
1 and 5 (the graphs are traced at 2 and 3).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import unidl
from tests.conftest import BACKENDS, run_python
from unidl import layers, ops
from unidl.export import ExportError

MODELS = ("mlp", "cnn", "lstm", "attention")
#: format -> (file suffix, backend that must be installed to write it, or None)
FORMATS = {"onnx": (".onnx", None), "torch": (".pt2", "torch"),
           "tf_saved_model": ("_saved_model", "tensorflow")}
BATCHES = (5, 1)  # (not the traced batch sizes 2 and 3)
RTOL, ATOL = 1e-4, 1e-5

_INPUT_SHAPES = {"mlp": (28, 28), "cnn": (8, 8, 1), "lstm": (6, 4), "attention": (5, 8)}


def _build(kind):
    """The three models of the issue, and self-attention (small shapes, so the file stays
    fast)."""
    shape = _INPUT_SHAPES[kind]
    if kind == "attention":
        x = unidl.Input(shape)
        h = layers.MultiHeadAttention(2, 4)(x, x)
        return unidl.Model(x, layers.Dense(10, activation="softmax")(layers.Flatten()(h)))
    if kind == "mlp":  # the README's MNIST model
        stack = [layers.Flatten(input_shape=shape), layers.Dense(128, activation="relu"),
                 layers.Dropout(0.2), layers.Dense(10, activation="softmax")]
    elif kind == "cnn":
        stack = [layers.Conv2D(4, 3, padding="same", activation="relu", input_shape=shape),
                 layers.BatchNormalization(), layers.MaxPooling2D(2), layers.Flatten(),
                 layers.Dense(10, activation="softmax")]
    else:
        stack = [layers.LSTM(32, input_shape=shape), layers.Dense(10, activation="softmax")]
    return unidl.Sequential(stack)


_TRAINED: dict = {}


def _trained(backend, kind):
    """``(model, {batch: x}, {batch: predict(x)})``: the model trained two steps on
    ``backend`` (cached for the module)."""
    key = (backend, kind)
    if key not in _TRAINED:
        rng = np.random.default_rng(len(_TRAINED))
        shape = _INPUT_SHAPES[kind]
        with unidl.use_backend(backend):
            unidl.random.set_seed(0)
            model = _build(kind)
            model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
            x = rng.standard_normal((32,) + shape).astype(np.float32)
            model.fit(x, rng.integers(0, 10, 32), epochs=1, batch_size=16, verbose=0)
            xs = {b: rng.standard_normal((b,) + shape).astype(np.float32) for b in BATCHES}
            want = {b: model.predict(v, verbose=0) for b, v in xs.items()}
        _TRAINED[key] = (model, xs, want)
    return _TRAINED[key]


# ---- running the artifacts without unidl -----------------------------------------------------
_RUNNER = """
import json, sys
import numpy as np
sys.path.insert(0, sys.argv[1])  # a unidl.py that raises ImportError
try:
    import unidl  # noqa: F401
except ImportError:
    pass
else:
    raise SystemExit("import unidl succeeded: the artifact is not tested without unidl")
fmt, jobs, out = sys.argv[2], json.loads(sys.argv[3]), sys.argv[4]
if fmt == "onnx":
    import onnxruntime
    def run(path, x):
        return onnxruntime.InferenceSession(path).run(None, {"input": x})[0]
elif fmt == "torch":
    import torch
    def run(path, x):
        with torch.no_grad():
            return torch.export.load(path).module()(torch.from_numpy(x)).numpy()
else:
    import tensorflow as tf
    def run(path, x):
        serve = tf.saved_model.load(path).signatures["serving_default"]
        return serve(input=tf.constant(x))["output_0"].numpy()
results = {}
for key, path, inputs in jobs:
    with np.load(inputs) as data:
        for name in data.files:
            results[f"{key}/{name}"] = run(path, data[name])
leaked = sorted(m for m in sys.modules if m.split(".")[0].startswith("unidl"))
if leaked:
    raise SystemExit(f"unidl modules were imported: {leaked}")
np.savez(out, **results)
"""


def _run_without_unidl(tmp, fmt, jobs):
    """Run ``jobs`` (``(key, artifact, inputs.npz)``) in a fresh interpreter where ``import
    unidl`` fails; ``{key/batch: output}``."""
    blocker = tmp / "blocker"
    blocker.mkdir(exist_ok=True)
    (blocker / "unidl.py").write_text("raise ImportError('unidl is not available here')\n")
    script = tmp / "runner.py"
    script.write_text(textwrap.dedent(_RUNNER))
    out = tmp / f"{fmt}_outputs.npz"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run([sys.executable, str(script), str(blocker), fmt, json.dumps(jobs),
                           str(out)], capture_output=True, text=True, env=env, cwd=tmp,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    with np.load(out) as data:
        return {k: data[k] for k in data.files}


_RESULTS: dict = {}


def _results(fmt, tmp_path_factory):
    """Every model on every backend exported to ``fmt`` and run without unidl (once)."""
    if fmt not in _RESULTS:
        tmp = tmp_path_factory.mktemp(fmt)
        jobs = []
        for backend in BACKENDS:
            for kind in MODELS:
                model, xs, _ = _trained(backend, kind)
                path = tmp / f"{backend}_{kind}{FORMATS[fmt][0]}"
                assert model.export(path, format=fmt) == str(path)
                inputs = tmp / f"{backend}_{kind}_inputs.npz"
                np.savez(inputs, **{str(b): x for b, x in xs.items()})
                jobs.append((f"{backend}/{kind}", str(path), str(inputs)))
        _RESULTS[fmt] = (tmp, _run_without_unidl(tmp, fmt, jobs))
    return _RESULTS[fmt]


def _require(fmt):
    if fmt == "onnx":
        pytest.importorskip("onnx", reason="format 'onnx' needs the onnx package")
        pytest.importorskip("onnxruntime", reason="running ONNX files needs onnxruntime")
    needed = FORMATS[fmt][1]
    if needed is not None and needed not in BACKENDS:
        pytest.skip(f"format {fmt!r} is written by the {needed} backend, not installed")


@pytest.mark.parametrize("fmt", list(FORMATS))
@pytest.mark.parametrize("kind", MODELS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_export_runs_without_unidl_and_matches_predict(backend, kind, fmt, tmp_path_factory):
    _require(fmt)
    _, outputs = _results(fmt, tmp_path_factory)
    _, _, want = _trained(backend, kind)
    for batch, expected in want.items():
        got = outputs[f"{backend}/{kind}/{batch}"]
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, rtol=RTOL, atol=ATOL,
                                   err_msg=f"{kind} built on {backend}, {fmt}, batch {batch}")


@pytest.mark.parametrize("kind", MODELS)
def test_onnx_files_pass_the_full_check_with_a_dynamic_batch(kind, tmp_path_factory):
    _require("onnx")
    import onnx

    from unidl.export.onnx import OPSET

    tmp, _ = _results("onnx", tmp_path_factory)
    for backend in BACKENDS:
        model = onnx.load(str(tmp / f"{backend}_{kind}.onnx"))
        onnx.checker.check_model(model, full_check=True)
        assert [o.version for o in model.opset_import] == [OPSET]
        (inp,) = model.graph.input
        assert inp.type.tensor_type.shape.dim[0].dim_param == "batch"
        assert [d.dim_value for d in inp.type.tensor_type.shape.dim[1:]] == \
            list(_INPUT_SHAPES[kind])


def test_saved_model_has_the_serving_layout(tmp_path_factory):
    _require("tf_saved_model")
    tmp, _ = _results("tf_saved_model", tmp_path_factory)
    folder = tmp / f"{BACKENDS[0]}_cnn_saved_model"
    assert {"saved_model.pb", "variables", "assets"} <= set(os.listdir(folder))
    leftovers = [p for p in os.listdir(tmp) if p.startswith(".")]
    assert not leftovers, leftovers


# ---- errors -----------------------------------------------------------------------------------
class Unexportable(layers.Layer):
    """Calls an op that has no ONNX rule (an internal gradient op)."""

    def call(self, x):
        return ops.max_pool_backprop(x, x, 1)


class BatchAsNumber(layers.Layer):
    """Feeds the batch size to an op as a Python number (nothing can keep that dynamic)."""

    def call(self, x):
        return ops.multiply(x, float(ops.shape(x)[0]))


class HostMath(layers.Layer):
    """Computes on the host, outside unidl.ops (an export would freeze the result)."""

    def call(self, x):
        return ops.add(x, ops.convert_to_tensor(np.asarray(ops.to_numpy(x)) * 2.0))


def _with(layer, shape=(5, 3)):
    return unidl.Sequential([layers.Dense(3, input_shape=shape), layer])


def test_unknown_format_lists_the_known_ones(tmp_path):
    with unidl.use_backend("numpy"):
        model = _with(layers.Flatten())
        with pytest.raises(ExportError) as err:
            model.export(tmp_path / "model.bin", format="keras3")
    text = str(err.value)
    assert "unknown export format 'keras3'" in text and "'onnx'" in text
    for fmt, (_, needs) in FORMATS.items():
        assert (f"'{fmt}'" in text) == (needs is None or needs in BACKENDS), text


def test_an_op_without_an_onnx_rule_names_layer_op_and_format(tmp_path):
    _require("onnx")
    with unidl.use_backend("numpy"):
        model = _with(Unexportable(name="odd"))
        with pytest.raises(ExportError) as err:
            model.export(tmp_path / "model.onnx")
    text = str(err.value)
    assert "layer 'odd' (Unexportable)" in text and "'max_pool_backprop'" in text
    assert "'onnx'" in text
    assert os.listdir(tmp_path) == []  # nothing written, not even a temporary file


@pytest.mark.parametrize("layer, words", [
    (BatchAsNumber(name="by_batch"), ["layer 'by_batch' (BatchAsNumber)", "'multiply'",
                                      "batch"]),
    (HostMath(name="host"), ["layer 'host' (HostMath)", "'add'", "unidl.ops"]),
], ids=["batch_as_number", "host_math"])
def test_a_pass_no_graph_can_hold_is_an_error_naming_the_layer(layer, words, tmp_path):
    with unidl.use_backend("numpy"):
        model = _with(layer)
        for fmt in [f for f, (_, needs) in FORMATS.items() if needs in (None, *BACKENDS)]:
            with pytest.raises(ExportError) as err:
                model.export(tmp_path / f"model_{fmt}", format=fmt)
            assert all(w in str(err.value) for w in words), str(err.value)
    assert os.listdir(tmp_path) == []


def test_unbuilt_model_says_how_to_build_it(tmp_path):
    with unidl.use_backend("numpy"):
        model = unidl.Sequential([layers.Dense(2)])
        with pytest.raises(ExportError, match="not built.*build"):
            model.export(tmp_path / "model.onnx")


def test_missing_directory_is_named(tmp_path):
    with unidl.use_backend("numpy"):
        model = _with(layers.Flatten())
        with pytest.raises(FileNotFoundError) as err:
            model.export(tmp_path / "nowhere" / "model.onnx", format="onnx")
    assert isinstance(err.value, ExportError) and "nowhere" in str(err.value)


def test_no_format_and_an_unknown_extension_asks_for_one(tmp_path):
    with unidl.use_backend("numpy"):
        with pytest.raises(ExportError, match="give format="):
            _with(layers.Flatten()).export(tmp_path / "model")


@pytest.mark.parametrize("fmt", ["torch", "tf_saved_model"])
def test_an_interrupted_write_leaves_no_artifact(fmt, tmp_path, monkeypatch):
    _require(fmt)
    if fmt == "torch":
        import torch

        target, attr = torch.export, "save"
    else:
        import tensorflow as tf

        target, attr = tf.saved_model, "save"

    def broken(obj, path, *args, **kwargs):
        os.makedirs(path, exist_ok=True) if fmt != "torch" else open(path, "wb").close()
        raise KeyboardInterrupt("interrupted while writing")

    monkeypatch.setattr(target, attr, broken)
    with unidl.use_backend("numpy"):
        model = _with(layers.Flatten())
        with pytest.raises(KeyboardInterrupt):
            model.export(tmp_path / f"model{FORMATS[fmt][0]}", format=fmt)
    assert os.listdir(tmp_path) == []


def test_importing_unidl_imports_no_export_package():
    proc = run_python("""
        import sys
        import unidl
        from unidl import ops
        ops.add(ops.ones((2,)), 1.0)
        print("LOADED", [m for m in ("onnx", "onnxruntime", "torch", "tensorflow")
                         if m in sys.modules])
    """, env={"UNIDL_BACKEND": "numpy"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "LOADED []" in proc.stdout


# ---- the ONNX rules of the spec ---------------------------------------------------------------
def test_plain_onnx_names_are_one_to_one():
    """A rule given as a plain ONNX op name maps the op's tensor arguments to the ONNX
    inputs; an op with other arguments needs a converter (an OnnxOp)."""
    from unidl.export.rules import OnnxOp
    from unidl.spec import all_specs

    for spec in all_specs():
        rule = spec.export.get("onnx")
        if isinstance(rule, OnnxOp):
            assert callable(rule.convert), spec.name
        elif rule is not None:
            others = [n for i, n in enumerate(spec.param_names) if i not in spec.tensor_pos]
            assert not others, f"{spec.name}: ONNX name {rule!r} but arguments {others}"


def _not_in_onnx(spec, args):
    """Why ONNX cannot hold this call (the export must then say so), or None."""
    from unidl.spec.core import COMPOSITE

    if spec.name == "dropout" and args[3] and args[1] > 0:
        return "random: dropout with training=True has no inference graph"
    if "onnx" not in spec.export and spec.kind != COMPOSITE and (
            spec.tensor_pos or spec.tensor_list_pos):
        return "a primitive without an ONNX rule (the gradient's internal ops)"
    return None


def _op_cases():
    from unidl.spec import all_specs

    for spec in all_specs():
        if spec.samples is None:
            continue
        dtype = "float32" if "float32" in spec.dtypes else spec.dtypes[0]
        for sample in spec.samples(dtype, np.random.default_rng(0)):
            yield pytest.param(spec, sample, id=f"{spec.name}[{sample.name}]")


def _as_float32(a):
    return a.astype(np.float32) if isinstance(a, np.ndarray) and a.dtype.kind == "f" else a


@pytest.mark.parametrize("spec, sample", list(_op_cases()))
def test_onnx_rule_matches_the_numpy_backend(spec, sample):
    """Each op (its rule, or its implementation's ops) converted alone: its first tensor
    argument is the graph input, the others constants; ONNX Runtime against NumPy. An op
    ONNX cannot hold must be an error naming it."""
    _require("onnx")
    import onnxruntime

    from unidl.backend.registry import get_backend
    from unidl.export.onnx import to_onnx
    from unidl.export.trace import trace_call

    args = [_as_float32(a) if i in spec.tensor_pos else
            [_as_float32(v) for v in a] if i in spec.tensor_list_pos else a
            for i, a in enumerate(sample.args)]
    first = next((i for i in spec.tensor_pos if isinstance(args[i], np.ndarray)), None)

    def call(*xs):
        a = list(args)
        if first is not None:
            a[first] = xs[0]
        fn = getattr(ops, spec.name)
        return fn(*a[:-1], *a[-1]) if spec.varargs else fn(*a)

    inputs = [args[first]] if first is not None else []
    with unidl.use_backend("numpy"), np.errstate(all="ignore"):
        try:
            want = call(*inputs)
        except unidl.OpError:
            pytest.skip("the sample is an error case of the op itself")
        graph = trace_call(call, get_backend("numpy"), inputs)
    if _not_in_onnx(spec, args) is not None:
        with pytest.raises(ExportError, match=f"op '{spec.name}' cannot be exported to "
                                              "format 'onnx'"):
            to_onnx(graph)
        return
    wants = [np.asarray(w) for w in (want if isinstance(want, (list, tuple)) else [want])]
    if any(w.dtype.name == "bfloat16" for w in wants):
        pytest.skip("ONNX Runtime's Python API returns no bfloat16 arrays")
    session = onnxruntime.InferenceSession(to_onnx(graph).SerializeToString())
    got = session.run(None, {"input": inputs[0]} if inputs else {})
    for w, o in zip(wants, got):
        assert o.shape == w.shape and o.dtype == w.dtype, (o.shape, o.dtype, w.shape, w.dtype)
        if w.dtype.kind == "f":
            np.testing.assert_allclose(o, w, rtol=RTOL, atol=ATOL, equal_nan=True)
        else:
            np.testing.assert_array_equal(o, w)
