"""Optimizers: name resolution, errors, state save/restore, schedules, and agreement with
``torch.optim`` (whose update rules the docstrings follow)."""

from __future__ import annotations

import math

import numpy as np
import pytest

import unidl
from unidl import ops, optimizers
from unidl.optimizers import schedules

NAMES = ["adam", "sgd", "rmsprop", "adagrad", "adadelta", "adamax", "nadam", "adamw", "lion"]


def _grads(rng, shapes, n, dtype=np.float32):
    return [[rng.standard_normal(s).astype(dtype) for s in shapes] for _ in range(n)]


# ---- resolution and errors ----------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_get_resolves_every_name(name):
    opt = optimizers.get(name)
    assert isinstance(opt, optimizers.Optimizer)
    assert type(opt) is optimizers.ALL[name]
    assert type(optimizers.get(name.upper())) is type(opt)
    assert optimizers.get(opt) is opt


def test_get_passes_kwargs():
    opt = optimizers.get("sgd", learning_rate=0.5, momentum=0.9)
    assert opt.momentum == 0.9 and opt.get_config()["learning_rate"] == 0.5


def test_get_unknown_name_lists_known():
    with pytest.raises(ValueError, match="unknown optimizer 'adamm'") as info:
        optimizers.get("adamm")
    for name in NAMES:
        assert name in str(info.value)
    with pytest.raises(TypeError):
        optimizers.get(3)


def test_defaults_are_keras():
    adam = optimizers.Adam()
    assert (adam.beta_1, adam.beta_2, adam.epsilon, adam.amsgrad) == (0.9, 0.999, 1e-7, False)
    assert optimizers.SGD().get_config()["learning_rate"] == 0.01
    assert optimizers.AdamW().weight_decay == 0.004
    assert optimizers.Adagrad().initial_accumulator_value == 0.1
    assert optimizers.Adadelta().rho == 0.95
    lion = optimizers.Lion()
    assert (lion.get_config()["learning_rate"], lion.beta_1, lion.beta_2) == (1e-4, 0.9, 0.99)
    rms = optimizers.RMSprop()
    assert (rms.rho, rms.momentum, rms.epsilon, rms.centered) == (0.9, 0.0, 1e-7, False)


@pytest.mark.parametrize("kwargs, match", [
    ({"learning_rate": -1.0}, "learning_rate"),
    ({"learning_rate": "fast"}, "learning_rate"),
    ({"clipnorm": 1.0, "clipvalue": 1.0}, "only one of"),
    ({"clipnorm": 1.0, "global_clipnorm": 1.0}, "only one of"),
    ({"clipnorm": -1.0}, "clipnorm"),
    ({"weight_decay": -0.1}, "weight_decay"),
])
def test_invalid_arguments(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        optimizers.Adam(**kwargs)


def test_invalid_optimizer_specific_arguments():
    with pytest.raises(ValueError, match="nesterov"):
        optimizers.SGD(nesterov=True)
    with pytest.raises(ValueError, match="momentum"):
        optimizers.SGD(momentum=-0.5)
    with pytest.raises(ValueError, match="beta_1"):
        optimizers.Adam(beta_1=1.5)
    with pytest.raises(ValueError, match="weight_decay"):
        optimizers.AdamW(weight_decay=None)
    with pytest.raises(ValueError, match="rho"):
        optimizers.RMSprop(rho=2.0)


def test_apply_errors(backend):
    opt = optimizers.SGD()
    v = unidl.Variable([1.0, 2.0])
    with pytest.raises(ValueError, match="not built"):
        opt.apply([[1.0, 1.0]])
    with pytest.raises(ValueError, match="2 gradients for 1 variables"):
        opt.apply([[1.0, 1.0], [1.0, 1.0]], [v])
    with pytest.raises(TypeError, match="unidl.Variable"):
        opt.apply([[1.0, 1.0]], [ops.convert_to_tensor([1.0, 2.0])])
    with pytest.raises(ValueError, match="shape"):
        opt.apply([[1.0, 1.0, 1.0]], [v])


# ---- behaviour on every backend ----------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_every_optimizer_decreases_a_quadratic(backend, name):
    lr = {"adadelta": 1.0, "lion": 0.05, "sgd": 0.1}.get(name, 0.1)
    opt = optimizers.get(name, learning_rate=lr)
    w = unidl.Variable(np.array([2.0, -3.0, 1.5], np.float32))
    start = float(np.sum(w.numpy() ** 2))
    for _ in range(10):
        g = unidl.grad(lambda v: ops.sum(ops.square(v)))(w)
        opt.apply([g], [w])
    assert float(np.sum(w.numpy() ** 2)) < start
    assert int(opt.iterations) == 10
    assert w.dtype == "float32"
    if backend == "torch":
        assert w.storage.is_leaf and w.storage.requires_grad


def test_none_gradients_are_skipped(backend):
    a, b = unidl.Variable([1.0]), unidl.Variable([1.0])
    opt = optimizers.SGD(learning_rate=0.5)
    opt.apply([None, [1.0]], [a, b])
    np.testing.assert_allclose(a.numpy(), [1.0])
    np.testing.assert_allclose(b.numpy(), [0.5])
    opt.apply_gradients([([2.0], a), (None, b)])
    np.testing.assert_allclose(a.numpy(), [0.0])
    np.testing.assert_allclose(b.numpy(), [0.5])
    assert int(opt.iterations) == 2


def test_variables_order_and_names(backend):
    w = unidl.Variable(np.zeros((2, 3), np.float32), name="w")
    b = unidl.Variable(np.zeros(3, np.float32), name="b")
    opt = optimizers.Adam(amsgrad=True)
    opt.build([w, b])
    names = [v.name for v in opt.variables]
    assert names == ["adam/iterations", "adam/learning_rate", "w/m", "w/v", "w/v_max", "b/m",
                     "b/v", "b/v_max"]
    assert opt.variables[0].dtype == "int64"
    assert all(v.shape == (2, 3) for v in opt.variables[2:5])
    assert not any(v.trainable for v in opt.variables)
    assert optimizers.Nadam().variables[-1].name == "nadam/mu_product"


@pytest.mark.parametrize("name", NAMES)
def test_state_save_and_restore(backend, name):
    rng = np.random.default_rng(0)
    shapes = [(3, 2), (4,)]
    grads = _grads(rng, shapes, 6)
    start = [rng.standard_normal(s).astype(np.float32) for s in shapes]

    opt = optimizers.get(name, learning_rate=0.05)
    ws = [unidl.Variable(s) for s in start]
    for g in grads[:3]:
        opt.apply(g, ws)
    saved_opt = [v.numpy() for v in opt.variables]
    saved_w = [w.numpy() for w in ws]
    for g in grads[3:]:
        opt.apply(g, ws)

    fresh = optimizers.get(name, learning_rate=0.05)
    ws2 = [unidl.Variable(s) for s in saved_w]
    fresh.build(ws2)
    assert len(fresh.variables) == len(saved_opt)
    for v, s in zip(fresh.variables, saved_opt):
        v.assign(s)
    assert int(fresh.iterations) == 3
    for g in grads[3:]:
        fresh.apply(g, ws2)
    for a, b in zip(ws, ws2):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6, atol=1e-6)


def test_learning_rate_property_and_setter(backend):
    opt = optimizers.SGD(learning_rate=0.5)
    w = unidl.Variable([1.0])
    opt.apply([[1.0]], [w])
    np.testing.assert_allclose(w.numpy(), [0.5])
    assert float(opt.learning_rate) == 0.5
    opt.learning_rate = 0.25
    opt.apply([[1.0]], [w])
    np.testing.assert_allclose(w.numpy(), [0.25])
    assert float(opt.learning_rate) == 0.25

    sched = optimizers.SGD(learning_rate=schedules.ExponentialDecay(1.0, 1, 0.5))
    np.testing.assert_allclose(ops.to_numpy(sched.learning_rate), 1.0)
    with pytest.raises(TypeError, match="schedule"):
        sched.learning_rate = 0.1


def test_learning_rate_callable(backend):
    rate = {"lr": 1.0}
    opt = optimizers.SGD(learning_rate=lambda: rate["lr"])
    w = unidl.Variable([1.0])
    opt.apply([[1.0]], [w])
    rate["lr"] = 0.5
    opt.apply([[1.0]], [w])
    np.testing.assert_allclose(w.numpy(), [-0.5])


def test_constraint_and_weight_decay_exclusion(backend):
    w = unidl.Variable([1.0, -1.0], name="dense/kernel")
    b = unidl.Variable([1.0, 1.0], name="dense/bias")
    w.constraint = lambda x: ops.clip(x, -0.5, 0.5)
    opt = optimizers.SGD(learning_rate=0.1, weight_decay=1.0)
    opt.exclude_from_weight_decay(names=["bias"])
    opt.apply([[0.0, 0.0], [0.0, 0.0]], [w, b])
    np.testing.assert_allclose(w.numpy(), [0.5, -0.5])  # decayed to 0.9, then constrained
    np.testing.assert_allclose(b.numpy(), [1.0, 1.0])  # excluded from decay


def test_float64_variables_use_float64_scalars(backend):
    w = unidl.Variable(np.array([1.0, 2.0]))
    opt = optimizers.Adam(learning_rate=0.1)
    opt.apply([np.array([0.3, -0.2])], [w])
    assert opt.learning_rate.dtype == "float64"
    assert w.dtype == "float64"


def test_mixed_dtypes(backend):
    a = unidl.Variable(np.ones(2, np.float32))
    b = unidl.Variable(np.ones(2, np.float16))
    opt = optimizers.Adam(learning_rate=0.1)
    opt.apply([np.ones(2, np.float32), np.ones(2, np.float32)], [a, b])
    assert a.dtype == "float32" and b.dtype == "float16"
    np.testing.assert_allclose(a.numpy(), [0.9, 0.9], rtol=1e-5)
    np.testing.assert_allclose(b.numpy().astype(np.float32), [0.9, 0.9], rtol=1e-3)


def _tf_step(tf, w, opt):
    @tf.function
    def step(g):
        opt.apply([g], [w])

    return step


def test_tensorflow_step_inside_tf_function():
    tf = pytest.importorskip("tensorflow")
    with unidl.use_backend("tensorflow"):
        for build_first in (True, False):
            w = unidl.Variable(np.array([1.0, 2.0], np.float32))
            opt = optimizers.Adam(learning_rate=0.1, global_clipnorm=1.0,
                                  weight_decay=0.01, amsgrad=True)
            if build_first:
                opt.build([w])

            step = _tf_step(tf, w, opt)

            for _ in range(3):
                step(tf.constant([0.5, -0.5]))
            ref = optimizers.Adam(learning_rate=0.1, global_clipnorm=1.0, weight_decay=0.01,
                                  amsgrad=True)
            w2 = unidl.Variable(np.array([1.0, 2.0], np.float32))
            for _ in range(3):
                ref.apply([tf.constant([0.5, -0.5])], [w2])
            np.testing.assert_allclose(w.numpy(), w2.numpy(), rtol=1e-6)
            assert int(opt.iterations) == 3
            # changing the learning rate reaches the traced step (it lives in a Variable)
            opt.learning_rate = 0.0
            before = w.numpy()
            step(tf.constant([0.5, -0.5]))
            np.testing.assert_allclose(w.numpy(), before * (1 - 0.0), rtol=1e-6)


# ---- schedules --------------------------------------------------------------------------------
SCHEDULES = [
    schedules.ExponentialDecay(0.1, decay_steps=3, decay_rate=0.5),
    schedules.ExponentialDecay(0.1, decay_steps=3, decay_rate=0.5, staircase=True),
    schedules.PiecewiseConstantDecay([2, 5], [1.0, 0.5, 0.1]),
    schedules.CosineDecay(0.1, decay_steps=6, alpha=0.2),
    schedules.CosineDecay(0.0, decay_steps=4, warmup_target=0.2, warmup_steps=3),
]


@pytest.mark.parametrize("sched", SCHEDULES, ids=lambda s: type(s).__name__)
def test_schedule_tensor_path_matches_python_path(backend, sched):
    for step in range(12):
        want = sched(step)
        got = ops.to_numpy(sched(ops.convert_to_tensor(float(step))))
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
        got_int = ops.to_numpy(sched(ops.convert_to_tensor(step, "int64")))
        np.testing.assert_allclose(got_int, want, rtol=1e-6, atol=1e-7)


def test_schedule_values():
    e = schedules.ExponentialDecay(0.1, decay_steps=10, decay_rate=0.5)
    assert e(0) == 0.1 and math.isclose(e(10), 0.05) and math.isclose(e(5), 0.1 * 0.5 ** 0.5)
    s = schedules.ExponentialDecay(0.1, decay_steps=10, decay_rate=0.5, staircase=True)
    assert s(9) == 0.1 and math.isclose(s(10), 0.05)
    p = schedules.PiecewiseConstantDecay([10, 20], [1.0, 0.5, 0.1])
    assert [p(0), p(10), p(11), p(20), p(21)] == [1.0, 1.0, 0.5, 0.5, 0.1]
    c = schedules.CosineDecay(1.0, decay_steps=10, alpha=0.1)
    assert c(0) == 1.0 and math.isclose(c(5), 0.55) and math.isclose(c(10), 0.1)
    assert math.isclose(c(100), 0.1)
    w = schedules.CosineDecay(0.0, decay_steps=10, warmup_target=1.0, warmup_steps=5)
    assert w(0) == 0.0 and math.isclose(w(2), 0.4) and w(5) == 1.0
    assert math.isclose(w(10), 0.5) and math.isclose(w(15), 0.0, abs_tol=1e-12)


def test_schedule_errors():
    with pytest.raises(ValueError, match="one more value"):
        schedules.PiecewiseConstantDecay([1, 2], [1.0, 0.5])
    with pytest.raises(ValueError, match="increase"):
        schedules.PiecewiseConstantDecay([2, 1], [1.0, 0.5, 0.1])
    with pytest.raises(ValueError, match="decay_steps"):
        schedules.ExponentialDecay(0.1, 0, 0.5)
    with pytest.raises(ValueError, match="decay_steps"):
        schedules.CosineDecay(0.1, 0)


def test_schedule_drives_optimizer(backend):
    sched = schedules.PiecewiseConstantDecay([0, 1], [1.0, 0.5, 0.25])
    opt = optimizers.SGD(learning_rate=sched)
    w = unidl.Variable([0.0])
    for _ in range(4):
        opt.apply([[1.0]], [w])
    np.testing.assert_allclose(w.numpy(), [-(1.0 + 0.5 + 0.25 + 0.25)])


# ---- agreement with torch.optim -----------------------------------------------------------------
TORCH_CASES = [
    ("sgd", {"momentum": 0.9, "nesterov": True, "weight_decay": 0.01},
     "SGD", {"momentum": 0.9, "nesterov": True, "weight_decay": 0.01}),
    ("sgd", {"momentum": 0.5}, "SGD", {"momentum": 0.5}),
    ("adam", {"weight_decay": 0.01}, "Adam", {"weight_decay": 0.01}),
    ("adam", {"amsgrad": True, "epsilon": 1e-3}, "Adam", {"amsgrad": True, "eps": 1e-3}),
    ("adamw", {"weight_decay": 0.1}, "AdamW", {"weight_decay": 0.1}),
    ("adamw", {"weight_decay": 0.1, "amsgrad": True}, "AdamW",
     {"weight_decay": 0.1, "amsgrad": True}),
    ("rmsprop", {"rho": 0.8, "momentum": 0.5, "centered": True, "weight_decay": 0.01},
     "RMSprop", {"alpha": 0.8, "momentum": 0.5, "centered": True, "weight_decay": 0.01}),
    ("rmsprop", {}, "RMSprop", {"alpha": 0.9}),
    ("adagrad", {"initial_accumulator_value": 0.1, "weight_decay": 0.01}, "Adagrad",
     {"initial_accumulator_value": 0.1, "weight_decay": 0.01}),
    ("adadelta", {"rho": 0.9, "weight_decay": 0.01}, "Adadelta",
     {"rho": 0.9, "weight_decay": 0.01}),
    ("adamax", {"weight_decay": 0.01}, "Adamax", {"weight_decay": 0.01}),
    ("nadam", {"weight_decay": 0.01}, "NAdam", {"weight_decay": 0.01, "momentum_decay": 0.004}),
    ("nadam", {"momentum_decay": 0.1}, "NAdam", {"momentum_decay": 0.1}),
]


@pytest.mark.parametrize("name, kw, torch_name, torch_kw", TORCH_CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(TORCH_CASES)])
def test_matches_torch_optim(name, kw, torch_name, torch_kw):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    shapes = [(3, 2), (4,), ()]
    start = [rng.standard_normal(s) for s in shapes]
    grads = _grads(rng, shapes, 7, np.float64)
    lr = 1.0 if name == "adadelta" else 0.05
    eps = kw.get("epsilon", 1e-7)

    params = [torch.tensor(s, dtype=torch.float64, requires_grad=True) for s in start]
    betas = {"betas": (0.9, 0.999)} if torch_name in ("Adam", "AdamW", "Adamax", "NAdam") else {}
    extra = {} if torch_name == "SGD" else {"eps": eps}
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # torch keeps scalar state (NAdam's mu_product) in it
    try:
        topt = getattr(torch.optim, torch_name)(params, lr=lr, **{**betas, **extra, **torch_kw})
        for gs in grads:
            for p, g in zip(params, gs):
                p.grad = torch.tensor(g)
            topt.step()
    finally:
        torch.set_default_dtype(default)

    with unidl.use_backend("numpy"):
        opt = optimizers.get(name, learning_rate=lr, **kw)
        ws = [unidl.Variable(np.asarray(s, np.float64)) for s in start]
        for gs in grads:
            opt.apply(gs, ws)
        for w, p in zip(ws, params):
            np.testing.assert_allclose(w.numpy(), p.detach().numpy(), rtol=1e-10, atol=1e-12)
