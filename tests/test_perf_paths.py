"""The fast paths added for speed compute exactly what the general paths compute.

Each test runs the fast path and the general one (or an independent formula) on the same
inputs and asks for bitwise-equal results: the dispatcher's shortcuts for Variables and
Python scalars, the cached ``dtype`` results, the NumPy fused optimizers, the engine's
one-sided gradient rules, and the NumPy ``where``, ``sigmoid`` and max-pool kernels.
"""

from __future__ import annotations

import numpy as np
import pytest

import unidl
from unidl import dtypes as _dt
from unidl import ops, optimizers


def _np(x):
    return np.asarray(ops.to_numpy(x))


# -- dispatcher -----------------------------------------------------------------------------------
def _scalar_cases():
    """(dtype, scalar) pairs whose sum is defined the same everywhere: boolean arithmetic and
    a negative scalar with an unsigned result are backend-specific, so not listed."""
    for dtype in ("float16", "float32", "float64", "int8", "uint8", "int32", "int64", "bool"):
        for scalar in (2, 2.5, -1, True):
            expected = _dt.result_type(dtype, scalar)
            if not (expected == "bool" or (scalar == -1 and expected.startswith("u"))):
                yield dtype, scalar


@pytest.mark.parametrize("dtype, scalar", list(_scalar_cases()))
def test_scalar_with_tensor_follows_the_promotion_table(backend, dtype, scalar):
    x = ops.convert_to_tensor(np.array([1, 0, 3], dtype=_dt.numpy_dtype(dtype)))
    expected = _dt.result_type(dtype, scalar)
    for op, ref in ((ops.add, np.add), (ops.multiply, np.multiply),
                    (ops.subtract, np.subtract)):
        for left in (True, False):
            out = op(x, scalar) if left else op(scalar, x)
            assert ops.dtype(out) == expected, (op.__name__, left)
            xs = _np(x).astype(_dt.numpy_dtype(expected))
            s = np.asarray(scalar, dtype=_dt.numpy_dtype(expected))
            want = ref(xs, s) if left else ref(s, xs)
            np.testing.assert_array_equal(_np(out), want.astype(_dt.numpy_dtype(expected)))


def test_variables_take_the_fast_path_with_the_same_result(backend):
    v = unidl.Variable(np.array([[1.0, 2.0], [3.0, 4.0]], np.float32))
    t = ops.convert_to_tensor(np.array([[0.5, -1.0], [2.0, 0.25]], np.float32))
    for op in (ops.add, ops.multiply, ops.matmul, ops.maximum):
        np.testing.assert_array_equal(_np(op(v, t)), _np(op(ops.convert_to_tensor(v.numpy()),
                                                            t)))
        np.testing.assert_array_equal(_np(op(t, v)), _np(op(t, ops.convert_to_tensor(
            v.numpy()))))
    np.testing.assert_array_equal(_np(ops.relu(v)), np.maximum(v.numpy(), 0))
    # mixed dtypes still promote
    v64 = unidl.Variable(np.array([1.0, 2.0]), dtype="float64")
    assert ops.dtype(ops.add(v64, ops.ones((2,), dtype="float32"))) == "float64"


def test_dtype_argument_results_are_remembered_per_combination(backend):
    x = ops.convert_to_tensor(np.array([1.5, -2.0], np.float32))
    i = ops.convert_to_tensor(np.array([1, 2], np.int32))
    for _ in range(2):  # the second round is served from the cache
        assert ops.dtype(ops.cast(x, "float64")) == "float64"
        assert ops.dtype(ops.cast(x, "int32")) == "int32"
        assert ops.dtype(ops.cast(i, "float32")) == "float32"
        assert ops.dtype(ops.ones_like(x)) == "float32"
        assert ops.dtype(ops.ones_like(i)) == "int32"
        assert ops.dtype(ops.ones_like(x, dtype="float16")) == "float16"
        assert ops.dtype(ops.zeros_like(i, dtype=None)) == "int32"


# -- NumPy fused optimizers ---------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("make", [
    lambda: optimizers.Adam(0.01),
    lambda: optimizers.Adam(0.01, amsgrad=True, weight_decay=0.01),
    lambda: optimizers.AdamW(0.01, weight_decay=0.1),
    lambda: optimizers.SGD(0.01),
    lambda: optimizers.SGD(0.01, momentum=0.9, nesterov=True),
    lambda: optimizers.SGD(0.01, momentum=0.9, weight_decay=0.1),
], ids=["adam", "adam-amsgrad-wd", "adamw", "sgd", "sgd-nesterov", "sgd-momentum-wd"])
def test_numpy_fused_optimizers_are_bitwise_the_generic_update(dtype, make):
    with unidl.use_backend("numpy"):
        be = unidl.current_backend()
        assert be.optimizer_kernels
        results = []
        for fused in (True, False):
            saved = dict(be.optimizer_kernels)
            if not fused:
                be.optimizer_kernels.clear()
            try:
                vs = [unidl.Variable((np.arange(15).reshape(5, 3) / 7).astype(dtype)),
                      unidl.Variable(np.linspace(-1, 1, 4).astype(dtype)),
                      unidl.Variable(np.array(0.3, dtype))]
                opt = make()
                rng = np.random.default_rng(1)
                for _ in range(4):
                    opt.apply([rng.standard_normal(v.shape).astype(dtype) for v in vs], vs)
                results.append([v.numpy() for v in opt.variables] + [v.numpy() for v in vs])
            finally:
                be.optimizer_kernels.update(saved)
        for a, b in zip(*results):
            assert a.dtype == b.dtype and a.tobytes() == b.tobytes()


# -- engine: one-sided gradient rules ----------------------------------------------------------
def _partial_specs():
    from unidl.spec import all_specs

    return [s for s in all_specs() if s.grad_partial is not None]


def test_partial_rules_are_declared_in_the_spec():
    assert {s.name for s in _partial_specs()} >= {"matmul", "dense", "conv1d", "conv2d"}


@pytest.mark.parametrize("spec", _partial_specs(), ids=lambda s: s.name)
def test_every_declared_partial_rule_matches_the_full_rule_on_the_samples(spec):
    """Table-driven over the spec: each op's partial rule, on each of its gradient samples
    (float64), gives bitwise the full rule's cotangents for the inputs asked for."""
    with unidl.use_backend("numpy"):
        used = 0
        for smp in spec.samples("float64", np.random.default_rng(0)):
            if not smp.grad:
                continue
            args = tuple(ops.convert_to_tensor(a) if i in spec.tensor_pos and a is not None
                         else a for i, a in enumerate(smp.args))
            used += _full_and_partial(spec.name, args, dtype=np.float64)
        assert used, spec.name


def _full_and_partial(name, args, dtype=np.float32):
    """Every proper subset of the inputs through the engine's partial rule gives, for those
    inputs, bitwise the spec rule's cotangents (and None or the same for the others)."""
    from itertools import combinations

    from unidl.spec.core import get_spec

    spec = get_spec(name)
    out = getattr(ops, name)(*args)
    g = ops.convert_to_tensor(np.random.default_rng(3).standard_normal(ops.shape(out))
                              .astype(dtype))
    full = spec.grad(g, out, *args)
    slots = [k for k, i in enumerate(spec.tensor_pos) if args[i] is not None]
    used = 0
    for n in range(1, len(slots)):
        for subset in combinations(slots, n):
            part = spec.grad_partial(list(subset), g, out, *args)
            if part is None:
                continue
            used += 1
            for i in slots:
                if i in subset:
                    np.testing.assert_array_equal(_np(part[i]), _np(full[i]))
                elif part[i] is not None:
                    np.testing.assert_array_equal(_np(part[i]), _np(full[i]))
    return used


@pytest.mark.parametrize("shapes", [((4, 3), (3, 5)), ((2, 4, 3), (3, 5)),
                                    ((2, 1, 4, 3), (5, 3, 2)), ((4,), (4, 3))])
def test_one_sided_matmul_rule_matches_the_spec_rule(shapes):
    rng = np.random.default_rng(0)
    with unidl.use_backend("numpy"):
        x, y = (ops.convert_to_tensor(rng.standard_normal(s).astype(np.float32))
                for s in shapes)
        _full_and_partial("matmul", (x, y))


@pytest.mark.parametrize("case", [
    ((2, 7, 7, 3), (3, 3, 3, 4), 1, "valid", "channels_last", 1, 1),
    ((2, 8, 9, 4), (3, 2, 2, 6), 2, "same", "channels_last", 1, 2),
    ((2, 3, 9, 8), (3, 3, 3, 4), 1, "same", "channels_first", 2, 1),
])
def test_one_sided_conv_rule_matches_the_spec_rule(case):
    xs, ks, strides, padding, df, dil, groups = case
    rng = np.random.default_rng(0)
    with unidl.use_backend("numpy"):
        x = ops.convert_to_tensor(rng.standard_normal(xs).astype(np.float32))
        k = ops.convert_to_tensor(rng.standard_normal(ks).astype(np.float32))
        assert _full_and_partial("conv2d", (x, k, strides, padding, df, dil, groups, None))
        b = ops.convert_to_tensor(rng.standard_normal(ks[-1]).astype(np.float32))
        assert _full_and_partial("conv2d", (x, k, strides, padding, df, dil, groups, b))


@pytest.mark.parametrize("shapes", [((4, 3), (3, 5), (5,)), ((2, 4, 3), (3, 5), (5,)),
                                    ((3,), (3, 2), (2,)), ((4, 3), (3, 5), None)])
def test_partial_dense_rule_matches_the_spec_rule(shapes):
    rng = np.random.default_rng(0)
    with unidl.use_backend("numpy"):
        args = [None if s is None else
                ops.convert_to_tensor(rng.standard_normal(s).astype(np.float32))
                for s in shapes]
        assert _full_and_partial("dense", tuple(args))
        from unidl.spec.core import get_spec

        out = ops.dense(*args)
        weights_only = get_spec("dense").grad_partial([1, 2], ops.ones_like(out), out, *args)
        assert weights_only[0] is None  # the data input's product is skipped


def test_weight_only_gradient_equals_the_full_gradient():
    """The engine skips the data input's cotangent; the weights' gradients are unchanged."""
    rng = np.random.default_rng(0)
    with unidl.use_backend("numpy"):
        x = ops.convert_to_tensor(rng.standard_normal((4, 6, 6, 2)).astype(np.float32))
        k = ops.convert_to_tensor(rng.standard_normal((3, 3, 2, 3)).astype(np.float32))
        w = ops.convert_to_tensor(rng.standard_normal((48, 2)).astype(np.float32))

        def f(k, w, x):
            h = ops.relu(ops.conv2d(x, k, 1, "valid", "channels_last", 1, 1))
            return ops.sum(ops.matmul(ops.reshape(h, (4, 48)), w))

        gk, gw = unidl.grad(f, argnums=(0, 1))(k, w, x)
        gk2, gw2, _ = unidl.grad(f, argnums=(0, 1, 2))(k, w, x)
        np.testing.assert_array_equal(_np(gk), _np(gk2))
        np.testing.assert_array_equal(_np(gw), _np(gw2))


# -- NumPy kernels ---------------------------------------------------------------------------------
def test_numpy_where_bit_select_is_np_where():
    from unidl_numpy.kernels.elementwise import where

    rng = np.random.default_rng(0)
    for dt in ("float16", "float32", "float64"):
        for sc, sx, sy in [((30, 40), (30, 40), ()), ((30, 40), (), (30, 40)),
                           ((30, 40), (30, 40), (30, 40)), ((30, 40), (40,), (30, 1)),
                           ((40,), (30, 40), ())]:
            for yv in (0.0, -0.0, 1.5, np.nan, -np.inf):
                c = rng.random(sc) > 0.5
                x = rng.standard_normal(sx).astype(dt)
                if x.size > 1:
                    x.flat[0] = np.nan
                y = np.full(sy, yv, dt) if sy == () else rng.standard_normal(sy).astype(dt)
                a, b = where(c, x, y), np.where(c, x, y)
                assert a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()


def test_numpy_sigmoid_fast_formula_is_accurate_and_saturates():
    """``1 / (1 + exp(-x))`` in place: within a few ulps of the float64 value, exact at the
    specials, 0 (not a warning or NaN) where ``exp(-x)`` overflows."""
    import warnings

    from unidl_numpy.kernels.nn import sigmoid

    rng = np.random.default_rng(0)
    ulps = {"float16": 2 ** -10, "float32": 2 ** -23, "float64": 2 ** -52}
    for dt, eps in ulps.items():
        for shape in [(), (3,), (100, 50)]:
            x = (rng.standard_normal(shape) * 10).astype(dt)
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                a = sigmoid(x)
            assert a.dtype == x.dtype and a.shape == x.shape
            ref = 1.0 / (1.0 + np.exp(-x.astype(np.float64)))
            tiny = float(np.finfo(dt).smallest_subnormal)  # (below it the dtype has only 0)
            np.testing.assert_allclose(a.astype(np.float64), ref, rtol=4 * eps, atol=2 * tiny)
        specials = np.array([np.nan, np.inf, -np.inf, -0.0, -1e4, 1e4], dt)
        np.testing.assert_array_equal(sigmoid(specials), np.array([np.nan, 1, 0, 0.5, 0, 1], dt))


def test_numpy_max_pool_matches_window_max_and_first_argmax():
    from unidl.spec import conv as C
    from unidl_numpy.kernels import conv as K

    def reference_backprop(x, g, ps, st, pad, df):
        geo = C.pool_geometry(x.shape, ps, st, pad, df)
        xc, gc = K._cl(x, geo), K._cl(g, geo)
        n, c = xc.shape[0], xc.shape[-1]
        size = n * int(np.prod(geo.padded_sizes)) * c
        lin = K._argmax_index(xc, geo)
        xp = np.bincount(lin.ravel(), weights=gc.astype(np.float64).ravel(), minlength=size)
        xp = xp.reshape((n, *geo.padded_sizes, c))
        return K._uncl(K._crop(xp, geo).astype(x.dtype, copy=False), geo)

    rng = np.random.default_rng(0)
    for trial in range(120):
        x = rng.integers(0, 3, (2, int(rng.integers(3, 9)), int(rng.integers(3, 9)), 3))
        x = x.astype(np.float32)  # many ties
        if trial % 5 == 0:
            x[0, 1, 1, 0] = np.nan
        ps = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
        st = tuple(p + int(rng.integers(0, 2)) for p in ps)
        pad = ("valid", "same")[trial % 2]
        df = "channels_last"
        if trial % 3 == 0:
            x, df = np.ascontiguousarray(np.moveaxis(x, -1, 1)), "channels_first"
        geo = C.pool_geometry(x.shape, ps, st, pad, df)
        y = K.max_pool(x, ps, st, pad, df)
        want = K._uncl(K._pool_windows(K._cl(x, geo), geo, -np.inf).max(-1), geo)
        np.testing.assert_array_equal(y, want)
        g = rng.standard_normal(y.shape).astype(np.float32)
        want = reference_backprop(x, g, ps, st, pad, df)
        np.testing.assert_array_equal(K.max_pool_backprop(x, g, ps, st, pad, df), want)
        np.testing.assert_array_equal(  # (the gradient kernel's path: the forward's maxima)
            K.max_pool_backprop(x, g, ps, st, pad, df, pooled=y), want)


# -- TensorFlow: compiled functions dispatch by signature -----------------------------------------
def test_tensorflow_compiled_function_shortcut_behaves_as_the_tf_function():
    from tests.conftest import BACKENDS

    if "tensorflow" not in BACKENDS:
        pytest.skip("tensorflow is not installed")
    import tensorflow as tf

    with unidl.use_backend("tensorflow"):
        be = unidl.current_backend()
        calls = tf.Variable(0.0)

        def f(x, scale):
            calls.assign_add(1.0)  # a side effect that must happen on every call
            return x * tf.cast(scale, x.dtype)

        g = be.compile_function(f)
        for shape, dt in [((2,), tf.float32), ((3,), tf.float32), ((2,), tf.float32),
                          ((4, 2), tf.float32), ((2,), tf.float64), ((2,), tf.float32)]:
            x = tf.ones(shape, dt)
            out = g(x, tf.constant(3.0))
            assert out.dtype == dt and tuple(out.shape) == shape
            np.testing.assert_array_equal(out.numpy(), np.full(shape, 3.0))
        assert calls.numpy() == 6.0
        # called with a Python value, keywords, or from inside another tf.function: the
        # tf.function itself handles the call
        np.testing.assert_array_equal(g(tf.ones((2,)), 2.0).numpy(), [2.0, 2.0])
        np.testing.assert_array_equal(g(tf.ones((2,)), scale=tf.constant(4.0)).numpy(),
                                      [4.0, 4.0])
        outer = tf.function(lambda x: g(x, tf.constant(5.0)) + 1.0)
        np.testing.assert_array_equal(outer(tf.ones((2,))).numpy(), [6.0, 6.0])
        assert calls.numpy() == 9.0


def test_mean_metric_scalar_path_adds_like_assign_add(backend):
    from unidl import metrics

    values = [0.1, 2.5, 1e-3, 7.25, -3.0]
    m = metrics.Mean()
    total = np.float32(0.0)
    for v in values:
        m.update_state(ops.convert_to_tensor(np.float32(v)))
        total = np.float32(total + np.float32(v))
    assert _np(m.total.value).tobytes() == np.asarray(total, np.float32).tobytes()
    assert float(_np(m.count.value)) == len(values)
    np.testing.assert_allclose(float(_np(m.result())), float(total) / len(values), rtol=1e-6)
    m.reset_state()
    m.update_state(ops.convert_to_tensor(np.float32(4.0)))
    assert float(_np(m.result())) == 4.0


# -- NumPy gradient kernels ----------------------------------------------------------------------
def _grad_kernel_cases(rng):
    f32 = np.float32

    def r(*shape):
        return rng.standard_normal(shape).astype(f32)

    logits, labels = r(16, 10), rng.integers(0, 10, 16)
    x = r(16, 12)
    x[0, :4] = [0.0, -0.0, np.nan, np.inf]
    kept = np.where(rng.random((16, 12)) >= 0.25, x / f32(0.75), f32(0)).astype(f32)
    return [
        ("relu", (x,), [0]),
        ("dropout", (x, 0.25, 7, True), [0]),
        ("dropout", (x, 0.25, None, True), [0], kept),
        ("dropout", (x, 0.25, None, False), [0]),
        ("sparse_categorical_crossentropy", (labels, logits, True, -1), [1]),
        ("sparse_categorical_crossentropy", (labels, r(16, 10), False, -1), [1]),  # fallback
        ("mean", (r(16), None, False), [0]),
        ("mean", (r(4, 5), 0, False), [0]),                                            # fallback
        ("dense", (r(16, 12), r(12, 5), r(5)), [0, 1, 2]),
        ("dense", (r(16, 12), r(12, 5), r(5)), [1, 2]),
        ("dense", (r(2, 8, 12), r(12, 5), None), [0, 1]),
    ]


def test_numpy_grad_kernels_equal_the_spec_rules_bitwise():
    """Each NumPy gradient kernel gives the spec rule's cotangents, to the bit, for the inputs
    it handles; where it declines (None), the engine runs the spec rule."""
    from unidl.spec.core import get_spec
    from unidl_numpy.grad_kernels import GRAD_KERNELS

    rng = np.random.default_rng(5)
    declined = set()
    with unidl.use_backend("numpy"), np.errstate(all="ignore"):
        for name, args, slots, *given_out in _grad_kernel_cases(rng):
            spec = get_spec(name)
            out = given_out[0] if given_out else getattr(ops, name)(*args)
            g = np.asarray(rng.standard_normal(np.shape(out)).astype(np.float32))
            got = GRAD_KERNELS[name](slots, g, out, *args)
            if got is None:
                declined.add(name)
                continue
            want = spec.grad(g, out, *args)
            for i in slots:
                if want[i] is None:
                    assert got[i] is None
                    continue
                w = ops.to_numpy(want[i])
                assert got[i].dtype == w.dtype and got[i].shape == w.shape, (name, i)
                assert got[i].tobytes() == w.tobytes(), (name, i)
    assert declined == {"sparse_categorical_crossentropy", "mean"}


def test_engine_uses_grad_kernels_only_on_first_order_passes(monkeypatch):
    """A backend's gradient kernel replaces the spec rule in a first-order pass, but grad of
    grad (values of an outer differentiation) and ``spec_rules_only`` use the spec's rules."""
    from unidl.autodiff.engine import spec_rules_only
    from unidl.backend.state import current_backend

    with unidl.use_backend("numpy"):
        be = current_backend()
        calls = []
        real = be.grad_kernels["relu"]

        def counting(*a):
            calls.append(1)
            return real(*a)

        monkeypatch.setitem(be.grad_kernels, "relu", counting)
        x = ops.convert_to_tensor(np.array([-1.0, 0.5, 2.0], np.float32))

        def f(v):
            return ops.sum(ops.multiply(ops.relu(v), v))

        g1 = ops.to_numpy(unidl.grad(f)(x))
        assert calls and g1.tolist() == [0.0, 1.0, 4.0]
        calls.clear()
        with spec_rules_only():
            np.testing.assert_array_equal(ops.to_numpy(unidl.grad(f)(x)), g1)
        assert not calls
        h = ops.to_numpy(unidl.grad(lambda v: ops.sum(unidl.grad(f)(v)))(x))
        np.testing.assert_array_equal(h, [0.0, 2.0, 2.0])


# -- torch.compile ------------------------------------------------------------------------------
@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_torch_compiled_fit_traces_once_and_matches_eager(optimizer):
    """``jit_compile=True`` on torch: the fused optimizer reads the step and learning rate as
    tensors inside ``torch.compile`` (as floats they became graph constants, and dynamo
    recompiled at every step until its limit), so a second epoch compiles nothing new and
    the weights follow the eager run's."""
    torch = pytest.importorskip("torch")
    from torch._dynamo.utils import counters

    from unidl import layers

    torch._dynamo.reset()
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(64, 6)).astype("float32"), rng.integers(0, 3, 64)
    with unidl.use_backend("torch"):
        models = []
        for jit in (False, True):
            unidl.random.set_seed(0)
            model = unidl.Sequential([layers.Dense(8, activation="relu"), layers.Dense(3)])
            opt = optimizers.get(optimizer)
            model.compile(optimizer=opt, loss=unidl.losses.SparseCategoricalCrossentropy(
                from_logits=True), jit_compile=jit)
            model.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
            frames = dict(counters["frames"])
            model.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
            if jit:
                assert dict(counters["frames"]) == frames, "the second epochs recompiled"
            models.append(model)
    for eager, compiled in zip(*(m.get_weights() for m in models)):
        np.testing.assert_allclose(compiled, eager, rtol=1e-5, atol=1e-6)
