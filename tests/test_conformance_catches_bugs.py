"""The conformance suite catches bugs: deliberately broken backends, each installed as a
third-party distribution through the ``unidl`` entry point, each with exactly one bug.

Every test runs a small selection of the suite on the broken backend and asserts that the
failures are exactly the cases the bug affects, and that the report names the check, the op
(or optimizer) and the backend.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import unidl
from tests.conftest import BACKENDS
from unidl_conformance.optimizer import CONFIGS
from unidl_conformance.report import render_text, to_json
from unidl_conformance.runner import run

_PLUGIN = """
from unidl.backend import BackendEntry
from unidl.hookspecs import hookimpl


def _load():
    from {module}_impl import Broken

    return Broken()


@hookimpl
def unidl_register_backends():
    return [BackendEntry(name={name!r}, load=_load, description="deliberately broken")]
"""


def _install(installed, name: str, impl: str):
    """Install distribution ``unidl-{name}`` declaring backend ``name`` whose class
    ``Broken`` is defined by ``impl``."""
    module = f"unidl_{name}"
    installed(f"unidl-{name}", {name: module}, modules={
        f"{module}.py": _PLUGIN.format(module=module, name=name),
        f"{module}_impl.py": impl,
    })
    assert name in [b.name for b in unidl.list_backends() if b.error is None]


def _failed(result) -> set[str]:
    return {r.case.target for r in result.failed}


def _assert_named(result, check: str, backend: str, target: str, dtype: str):
    """The report names the check, the op and the backend of the failure."""
    ids = {r.case.id for r in result.failed}
    assert f"{check}-{backend}-cpu-{dtype}-{target}" in ids, ids
    text = render_text(result)
    assert f"FAILED {check} {target} on {backend}/cpu/{dtype}:" in text, text[-3000:]
    rows = [r for r in json.loads(to_json(result))["results"]
            if r["status"] == "fail"]
    assert any(r["check"] == check and r["case"] == target and r["backend"] == backend
               for r in rows), rows


# -- a wrong gradient sign on one op (torch, native autodiff) ---------------------------------
_WRONG_GRAD = """
import torch

from unidl_torch.backend import TorchBackend


class _Tanh(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        y = torch.tanh(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        return -g * (1 - y * y)  # the bug: the sign


class Broken(TorchBackend):
    name = "wronggrad"

    def __init__(self):
        super().__init__()
        self.kernels["tanh"] = _Tanh.apply
"""


@pytest.mark.skipif("torch" not in BACKENDS, reason="needs the torch backend to derive from")
def test_wrong_gradient_sign_is_caught(installed):
    _install(installed, "wronggrad", _WRONG_GRAD)
    result = run(backends=["wronggrad"], checks=["grad"], dtypes=["float64"],
                 pattern="tanh,sin,multiply,square,divide", progress=False)
    ran = {r.case.target for r in result.results}
    assert {"tanh", "sin", "multiply", "square", "divide"} <= ran
    assert _failed(result) == {"tanh"}, [(r.case.id, r.message) for r in result.failed]
    # the forward values of the broken op are right: only the gradient check can see it
    fwd = run(backends=["wronggrad"], checks=["forward"], dtypes=["float64"], pattern="tanh",
              progress=False)
    assert not fwd.failed
    _assert_named(result, "grad", "wronggrad", "tanh", "float64")


# -- an off-by-one in conv padding ---------------------------------------------------------------
_CONV_PADDING = """
import math

from unidl_numpy.backend import NumpyBackend


def _pairs(v, n):
    return tuple(v) if isinstance(v, (tuple, list)) else (v,) * n


class Broken(NumpyBackend):
    name = "convpad"

    def __init__(self):
        super().__init__()
        conv2d = self.kernels["conv2d"]

        def bad_conv2d(x, kernel, strides, padding, data_format, dilation_rate, groups,
                       bias=None):
            if padding != "same":
                return conv2d(x, kernel, strides, padding, data_format, dilation_rate, groups,
                              bias)
            sizes = x.shape[1:3] if data_format == "channels_last" else x.shape[2:4]
            pads = []
            for n, k, s, d in zip(sizes, kernel.shape[:2], _pairs(strides, 2),
                                  _pairs(dilation_rate, 2)):
                total = max((math.ceil(n / s) - 1) * s + (k - 1) * d + 1 - n, 0)
                # the bug: the odd pixel goes to the top/left instead of the bottom/right
                pads.append((total - total // 2, total // 2))
            return conv2d(x, kernel, strides, tuple(pads), data_format, dilation_rate, groups,
                          bias)

        self.kernels["conv2d"] = bad_conv2d
"""


def test_conv_padding_off_by_one_is_caught(installed):
    _install(installed, "convpad", _CONV_PADDING)
    result = run(backends=["convpad"], checks=["forward"], dtypes=["float32", "float64"],
                 pattern="conv1d,conv2d,max_pool,avg_pool,add", progress=False)
    ran = {r.case.target for r in result.results}
    assert {"conv1d", "conv2d", "conv2d_transpose", "depthwise_conv2d", "max_pool",
            "add"} <= ran
    assert _failed(result) == {"conv2d"}, [(r.case.id, r.message) for r in result.failed]
    assert {r.case.dtype for r in result.failed} == {"float32", "float64"}
    bad = next(r for r in result.failed if r.case.dtype == "float64")
    assert "same" in bad.message  # the sample that shows it has "same" padding
    _assert_named(result, "forward", "convpad", "conv2d", "float64")


# -- a softmax that overflows on large logits --------------------------------------------------
_SOFTMAX = """
import numpy as np

from unidl_numpy.backend import NumpyBackend


def softmax(x, axis=-1):
    e = np.exp(x)  # the bug: no max subtraction
    return e / np.sum(e, axis=axis, keepdims=True)


class Broken(NumpyBackend):
    name = "softmaxoverflow"

    def __init__(self):
        super().__init__()
        self.kernels["softmax"] = softmax
"""


def test_softmax_overflow_is_caught(installed):
    _install(installed, "softmaxoverflow", _SOFTMAX)
    result = run(backends=["softmaxoverflow"], checks=["forward"],
                 dtypes=["float32", "float64"], pattern="softmax,sigmoid,logsumexp,exp",
                 progress=False)
    ran = {r.case.target for r in result.results}
    assert {"softmax", "log_softmax", "sigmoid", "logsumexp", "exp", "expm1"} <= ran
    assert _failed(result) == {"softmax"}, [(r.case.id, r.message) for r in result.failed]
    assert all("large_logits" in r.message for r in result.failed), \
        [r.message for r in result.failed]
    _assert_named(result, "forward", "softmaxoverflow", "softmax", "float32")


# -- a dtype silently downcast --------------------------------------------------------------------
_DOWNCAST = """
import numpy as np

from unidl_numpy.backend import NumpyBackend


def arctan(x):
    if x.dtype == np.float64:
        x = x.astype(np.float32)  # the bug: computes (and returns) float32
    return np.arctan(x)


class Broken(NumpyBackend):
    name = "downcast"

    def __init__(self):
        super().__init__()
        self.kernels["arctan"] = arctan
"""


def test_silent_downcast_is_caught(installed):
    _install(installed, "downcast", _DOWNCAST)
    result = run(backends=["downcast"], checks=["forward"], dtypes=["float32", "float64"],
                 pattern="arctan,tan,sin,exp,add", progress=False)
    ran = {(r.case.target, r.case.dtype) for r in result.results}
    assert {("arctan", "float32"), ("arctan", "float64"), ("tan", "float64")} <= ran
    assert {(r.case.target, r.case.dtype) for r in result.failed} == {("arctan", "float64")}, \
        [(r.case.id, r.message) for r in result.failed]
    assert "dtype float32, expected float64" in result.failed[0].message
    _assert_named(result, "forward", "downcast", "arctan", "float64")


# -- Adam without bias correction (a fused optimizer kernel) ----------------------------------
_ADAM = """
import torch

from unidl_torch.backend import TorchBackend


@torch.no_grad()
def adam(opt, variables, grads, slots, lr, step, decay):
    params = [v.storage for v in variables]
    lr = float(lr)
    b1, b2, eps, wd = opt.beta_1, opt.beta_2, opt.epsilon, opt.weight_decay
    grads = list(grads)
    if wd and opt._coupled_decay:
        grads = [g + wd * p if d else g for g, p, d in zip(grads, params, decay)]
    if wd and not opt._coupled_decay:
        for p, d in zip(params, decay):
            if d:
                p.mul_(1.0 - lr * wd)
    for i, (p, g) in enumerate(zip(params, grads)):
        m, v = slots[i][0].storage, slots[i][1].storage
        m.mul_(b1).add_(g, alpha=1.0 - b1)
        v.mul_(b2).addcmul_(g, g, value=1.0 - b2)
        if opt.amsgrad:
            vmax = slots[i][2].storage
            torch.maximum(vmax, v, out=vmax)
            v = vmax
        p.sub_(lr * m / (v.sqrt() + eps))  # the bug: no bias correction of m and v
    return True


class Broken(TorchBackend):
    name = "adamnobias"

    def __init__(self):
        super().__init__()
        self.optimizer_kernels = {**self.optimizer_kernels, "adam": adam}
"""


@pytest.mark.skipif("torch" not in BACKENDS, reason="needs the torch backend to derive from")
def test_adam_without_bias_correction_is_caught(installed):
    _install(installed, "adamnobias", _ADAM)
    result = run(backends=["adamnobias"], checks=["optimizer"], dtypes=["float32"],
                 pattern="adam,sgd,rmsprop", progress=False)
    ran = {r.case.target for r in result.results}
    assert {"adam", "adamw", "nadam", "adamax", "sgd", "rmsprop"} <= ran
    # Adam and AdamW (the same update, decoupled decay) use the fused kernel; nothing else
    want = {t for t in CONFIGS if CONFIGS[t][0] in ("adam", "adamw")}
    assert _failed(result) == want, [(r.case.id, r.message) for r in result.failed]
    _assert_named(result, "optimizer", "adamnobias", "adam", "float32")


# -- a compiled step that fuses a kernel wrongly (what graph optimizers can do) ------------------
_BAD_FUSION = """
import numpy as np

from unidl_numpy.backend import NumpyBackend


class Broken(NumpyBackend):
    name = "badfusion"
    compile_by_default = True

    def compile_function(self, fn, jit=False):
        # stands for a graph rewrite that loses NaN in a fused relu: eager runs are right
        def run(*args):
            out = fn(*args)
            return np.where(np.isnan(out), 0.0, out).astype(out.dtype) if \\
                isinstance(out, np.ndarray) else out
        return run
"""


def test_a_compiled_step_that_differs_from_eager_is_caught(installed, monkeypatch):
    """The layer check also runs the forward pass inside the backend's compile_function: a
    fusion bug that only shows in compiled steps (as TensorFlow's oneDNN fusions did) fails
    the check, naming the compiled step."""
    import unidl_conformance.layers as L

    _install(installed, "badfusion", _BAD_FUSION)
    monkeypatch.setattr(L, "_inputs", lambda lc, rng: [np.full(s, np.nan) for s in lc.inputs])
    result = run(backends=["badfusion"], checks=["layer"], dtypes=["float32"],
                 pattern="Dense,Flatten", progress=False)
    messages = [r.message for r in result.failed]
    assert _failed(result) == {"Dense", "Flatten"}, messages
    assert all("compiled step" in m for m in messages), messages
