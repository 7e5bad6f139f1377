"""The TensorFlow kernels are right whether or not TensorFlow runs its oneDNN CPU kernels.

oneDNN is on by default on CPUs with AVX512-VNNI and newer (and off elsewhere or with
``TF_ENABLE_ONEDNN_OPTS=0``). There its ``Softmax`` loses NaN rows, its convolutions return
the input's shape for an empty batch, and Grappler's fused ``BiasAdd`` + ``Relu`` turns NaN
into 0 (see ``unidl_tensorflow.onednn``). Each check runs in a fresh interpreter twice,
with ``TF_ENABLE_ONEDNN_OPTS=1`` (the oneDNN kernels, on any x86 machine) and with ``=0``
(TensorFlow's own kernels). It compares the TensorFlow backend with the NumPy backend on
the same inputs, eagerly and inside ``tf.function`` with an unknown batch dimension.

The second part checks TensorFlow's start-up output. Loading the backend prints each line
at most once, and the user's ``TF_CPP_MIN_LOG_LEVEL`` and ``TF_ENABLE_ONEDNN_OPTS`` are
left as they are.
"""

from __future__ import annotations

import json
import re
from collections import Counter

import numpy as np
import pytest

from tests.conftest import run_python

pytest.importorskip("tensorflow")

_KERNELS = r"""
import json, os
import numpy as np
import unidl
from unidl import ops

onednn_env = os.environ.get("TF_ENABLE_ONEDNN_OPTS")
nan, inf = np.nan, np.inf
rng = np.random.default_rng(0)


def traced(fn, *args):
    # fn(*args); on TensorFlow inside a tf.function whose batch dimension is unknown
    if unidl.backend_name() != "tensorflow":
        return fn(*args)
    import tensorflow as tf
    sig = [tf.TensorSpec([None, *a.shape[1:]], a.dtype) for a in args]
    return tf.function(fn, input_signature=sig, autograph=False)(*args)


def t(a, dtype="float32"):
    return ops.convert_to_tensor(np.asarray(a, np.float64), dtype=dtype)


def pack(v):
    a = np.asarray(ops.to_numpy(v)).astype(np.float64)
    return {"shape": list(a.shape), "data": a.ravel().tolist()}


ROWS = [[1, nan, 2], [1, 2, 3], [inf, 0, 1], [-inf, 0, 1], [-inf, -inf, -inf], [nan] * 3]
XS = rng.uniform(-3, 3, (4, 5))
WS = rng.uniform(-1, 1, (4, 5))
K2 = rng.uniform(-1, 1, (3, 3, 4, 6))
KG = rng.uniform(-1, 1, (3, 3, 2, 6))
B6 = rng.uniform(-1, 1, (6,))
K1 = rng.uniform(-1, 1, (3, 4, 6))
KD = rng.uniform(-1, 1, (3, 3, 4, 2))
X2 = rng.uniform(-1, 1, (2, 5, 7, 4))
X1 = rng.uniform(-1, 1, (2, 9, 4))
# dense inputs: NaN and inf rows; the last row makes a pre-activation exactly 0
XD = np.array([[nan, 1.0], [inf, 0.0], [1.0, 2.0], [-1.0, -0.5], [0.25, 9.0]])
KDN = np.array([[0.0, 1.0], [1.0, 0.0]])
BD = np.array([0.5, 1.0])


def conv_cases(dt):
    x2, x1 = t(X2, dt), t(X1, dt)
    e2, e1 = t(X2[:0], dt), t(X1[:0], dt)

    def c2(x):
        return ops.conv2d(x, t(K2, dt), 1, "same", bias=t(B6, dt))

    def c2g(x):
        return ops.conv2d(x, t(KG, dt), 1, "valid", groups=2)

    def c1(x):
        return ops.conv1d(x, t(K1, dt), 2, "valid")

    def c0(x):
        return ops.conv2d(x, t(K2[..., :0], dt), 1, "valid")

    def dw(x):
        return ops.depthwise_conv2d(x, t(KD, dt), 1, "valid")

    def grads(conv, kernel):
        def fn(x):
            return unidl.grad(lambda k: ops.sum(ops.square(conv(x, k))))(t(kernel, dt))
        return fn

    g2 = grads(lambda x, k: ops.conv2d(x, k, 1, "same", bias=t(B6, dt)), K2)
    gdw = grads(lambda x, k: ops.depthwise_conv2d(x, k, 1, "valid"), KD)
    out = {}
    for name, fn, x, e in (("conv2d+bias", c2, x2, e2), ("conv2d groups", c2g, x2, e2),
                           ("conv1d", c1, x1, e1), ("depthwise_conv2d", dw, x2, e2),
                           ("conv2d no output channel", c0, x2, e2),
                           ("grad conv2d kernel", g2, x2, e2),
                           ("grad depthwise kernel", gdw, x2, e2)):
        out[f"{name} empty eager"] = lambda fn=fn, e=e: fn(e)
        out[f"{name} empty traced"] = lambda fn=fn, e=e: traced(fn, e)
        out[f"{name} batch 2 traced"] = lambda fn=fn, x=x: traced(fn, x)
    return out


def nan_cases(dt):
    x, rows, w = t(XS, dt), t(ROWS, dt), t(WS, dt)

    def loss(v):
        return ops.sum(ops.multiply(ops.softmax(v), w))

    out = {"softmax eager": lambda: ops.softmax(rows),
           "softmax axis 0": lambda: ops.softmax(rows, axis=0),
           "softmax traced": lambda: traced(ops.softmax, rows),
           "softmax grad eager": lambda: unidl.grad(loss)(x),
           "softmax grad traced": lambda: traced(lambda v: unidl.grad(loss)(v), x)}
    xd = t(XD, dt)
    for act in ("relu", "relu6", "hard_sigmoid"):
        f = getattr(ops, act)

        def dense(v, f=f):
            return f(ops.dense(v, t(KDN, dt), t(BD, dt)))

        def dense_grad(v, dense=dense):
            return unidl.grad(lambda u: ops.sum(dense(u)))(v)

        out[f"dense+{act} traced"] = lambda dense=dense: traced(dense, xd)
        out[f"dense+{act} grad traced"] = lambda g=dense_grad: traced(g, xd[2:])
    return out


def pool_cases(dt):
    e = t(X2[:0], dt)
    return {"max_pool_backprop empty eager":
            lambda: ops.max_pool_backprop(e, t(np.zeros((0, 2, 3, 4)), dt), 2, 2),
            "max_pool_backprop empty traced":
            lambda: traced(lambda v: ops.max_pool_backprop(v, ops.zeros_like(v), 1, 1), e)}


def evaluate(case):
    try:
        return pack(case())
    except Exception as exc:  # reported by the test that checks this case
        return {"error": f"{type(exc).__name__}: {str(exc)[:300]}"}


result = {}
for backend in ("tensorflow", "numpy"):
    with unidl.use_backend(backend):
        got = {}
        for dt in ("float32", "bfloat16", "float16"):
            cases = {**nan_cases(dt), **pool_cases(dt)}
            if dt != "float16":
                cases.update(conv_cases(dt))
            got.update({f"{k} [{dt}]": evaluate(v) for k, v in cases.items()})
        result[backend] = got
from unidl_tensorflow import onednn
result["onednn_enabled"] = onednn.enabled()
result["env"] = [onednn_env, os.environ.get("TF_ENABLE_ONEDNN_OPTS")]
print("RESULT", json.dumps(result))
"""

_STARTUP = """
import os
import unidl
from unidl import ops
before = os.environ.get("TF_CPP_MIN_LOG_LEVEL")
unidl.set_backend("tensorflow")
ops.softmax(ops.ones((2, 3)))
print("LEVEL", before, os.environ.get("TF_CPP_MIN_LOG_LEVEL"))
print("ONEDNN", os.environ.get("TF_ENABLE_ONEDNN_OPTS"))
"""

# absl/glog prefix: severity, date, time, thread id (the rest of a repeated line is equal)
_GLOG_PREFIX = re.compile(r"^[IWEF]\d{4} [\d:.]+ +\d+ ")


def _run_kernels(onednn):
    proc = run_python(_KERNELS, env={"TF_ENABLE_ONEDNN_OPTS": onednn})
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT "))
    return json.loads(line[len("RESULT "):])


@pytest.fixture(scope="module", params=["1", "0"], ids=["onednn_on", "onednn_off"])
def run(request):
    """The kernel script's results with oneDNN on (``=1``) and off (``=0``)."""
    return request.param, _run_kernels(request.param)


def _tolerance(name):
    return 3e-2 if ("bfloat16" in name or "float16" in name) else 1e-5


def _check(run, *words):
    """The TensorFlow results of the cases whose names hold all ``words`` equal NumPy's."""
    _, res = run
    names = [n for n in res["numpy"] if all(w in n for w in words)]
    assert names, words
    for name in names:
        got, want = res["tensorflow"][name], res["numpy"][name]
        assert "error" not in want, (name, want)
        assert "error" not in got, (name, got)
        assert got["shape"] == want["shape"], name
        tol = _tolerance(name)
        np.testing.assert_allclose(np.array(got["data"]), np.array(want["data"]), rtol=tol,
                                   atol=tol, equal_nan=True, err_msg=name)


def test_softmax_rows_holding_nan_or_inf_are_nan(run):
    _check(run, "softmax", "eager")
    _check(run, "softmax axis 0")
    _check(run, "softmax traced")


def test_softmax_gradient_is_tensorflows(run):
    _check(run, "softmax grad")


def test_conv1d_conv2d_empty_batch_shapes_eager_and_traced(run):
    for op in ("conv2d+bias", "conv2d groups", "conv1d"):
        _check(run, op, "empty")
        _check(run, op, "batch 2 traced")


def test_conv2d_without_output_channels(run):
    _check(run, "conv2d no output channel")


def test_depthwise_conv2d_empty_batch(run):
    _check(run, "depthwise_conv2d", "empty")
    _check(run, "depthwise_conv2d", "batch 2")


def test_conv_kernel_gradients_of_an_empty_batch_are_zero(run):
    _check(run, "grad conv2d kernel")
    _check(run, "grad depthwise kernel")


def test_relu_after_dense_keeps_nan_in_tf_function(run):
    for act in ("relu", "relu6", "hard_sigmoid"):
        _check(run, f"dense+{act} traced")
        _check(run, f"dense+{act} grad traced")


def test_max_pool_backprop_empty_batch(run):
    _check(run, "max_pool_backprop empty")


def test_unidl_does_not_touch_tf_enable_onednn_opts(run):
    mode, res = run
    assert res["env"] == [mode, mode]
    if mode == "0":
        assert not res["onednn_enabled"]


def _startup(monkeypatch, **env):
    """stderr lines and stdout of a process that loads the TensorFlow backend."""
    for name in ("TF_CPP_MIN_LOG_LEVEL", "TF_ENABLE_ONEDNN_OPTS"):
        monkeypatch.delenv(name, raising=False)
    proc = run_python(_STARTUP, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [ln for ln in proc.stderr.splitlines() if ln.strip()], proc.stdout


def _repeated(lines):
    counts = Counter(_GLOG_PREFIX.sub("", ln) for ln in lines)
    return [ln for ln, n in counts.items() if n > 1]


def test_second_copy_keeps_its_warnings_and_drops_its_repeated_info_lines():
    from unidl_tensorflow.startup import _BANNER, _kept

    info = b"I0000 00:00:1796319004.940911    4533 port.cc:153] oneDNN custom operations\n"
    info_more = b"I0101 12:00:01.5 7 cpu_feature_guard.cc:227] optimized\nTo enable: AVX2\n"
    warning = b"W0000 00:00:1796319004.940911    4533 util.cc:131] a warning\nits detail\n"
    error = b"E0101 12:00:01.500000 7 util.cc:131] an error\n"
    other = b"a line of some other library\n"
    captured = other + _BANNER + b"\n" + info + warning + info_more + error
    assert _kept(captured) == other + warning + error


def test_tensorflow_startup_lines_show_once(monkeypatch):
    lines, out = _startup(monkeypatch, TF_ENABLE_ONEDNN_OPTS="1")
    assert not _repeated(lines), lines
    # set at the backend's load, not at ``import unidl``; INFO and WARNING hidden, errors kept
    assert "LEVEL None 2" in out


def test_user_log_level_is_respected(monkeypatch):
    lines, out = _startup(monkeypatch, TF_ENABLE_ONEDNN_OPTS="1", TF_CPP_MIN_LOG_LEVEL="0")
    assert not _repeated(lines), lines
    assert "LEVEL 0 0" in out


def test_default_onednn_setting_is_left_unset(monkeypatch):
    lines, out = _startup(monkeypatch)
    assert not _repeated(lines), lines
    assert "ONEDNN None" in out


_FUSED_DEPTHWISE = """
import numpy as np
import unidl
from unidl import layers

x = np.random.default_rng(0).random((4, 8, 8, 2)).astype("float32")
out = {}
for backend in ("numpy", "tensorflow"):
    with unidl.use_backend(backend):
        unidl.random.set_seed(0)
        model = unidl.Sequential([layers.DepthwiseConv2D(3, padding="same",
                                                         input_shape=(8, 8, 2)),
                                  layers.Flatten(), layers.Dense(2)])
        out[backend] = model.predict(x, verbose=0)  # (a tf.function: Grappler may fuse)
print("MAXDIFF", float(np.abs(out["numpy"] - out["tensorflow"]).max()))
"""


@pytest.mark.parametrize("onednn", ["1", "0"], ids=["onednn_on", "onednn_off"])
def test_padded_depthwise_conv_with_bias_in_a_tf_function_does_not_abort(onednn):
    """oneDNN's fusion of an explicitly padded DepthwiseConv2dNative with its BiasAdd aborts
    the process (a failed C++ check), so the kernel pads with tf.pad in such graphs."""
    proc = run_python(_FUSED_DEPTHWISE, env={"TF_ENABLE_ONEDNN_OPTS": onednn})
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("MAXDIFF "))
    assert float(line.split()[1]) < 1e-5
