"""Optimizer conformance: every optimizer and option, on a backend/device/dtype, against an
independent float64 NumPy implementation of its documented update.

Each case starts three variables (a matrix, a vector and a scalar) from the same values and
feeds the same seeded sequence of gradients for :data:`STEPS` steps; after every step the
variables must match the reference within :data:`unidl.tolerances.OPTIMIZER_TOLERANCES`.
The gradients and starting values depend only on the case's target (not on the backend), and
are rounded to the dtype under test before the reference sees them. Some steps have large
gradients so that the clipping options clip on some steps and not on others.

The reference below is written from the docstrings of :mod:`unidl.optimizers` (which follow
``torch.optim``), step by step, in float64 NumPy; it never calls unidl.
"""

from __future__ import annotations

import math

import numpy as np

import unidl
from unidl.tolerances import OPTIMIZER_TOLERANCES
from unidl_conformance.cases import Case, Result, case_seed
from unidl_conformance.compare import compare

__all__ = ["CONFIGS", "OPTIMIZER_DTYPES", "STEPS", "optimizer_cases", "run_optimizer",
           "reference_trajectory"]

OPTIMIZER_DTYPES = ("float32", "float64")
STEPS = 6
SHAPES = [(3, 4), (5,), ()]
#: gradient scale per step (large steps make the clipping options clip)
SCALES = [1.0, 6.0, 0.3, 1.0, 4.0, 0.5]

_EXP = ("exponential", {"initial_learning_rate": 0.1, "decay_steps": 2, "decay_rate": 0.5})
_EXP_STAIR = ("exponential", {"initial_learning_rate": 0.1, "decay_steps": 2,
                              "decay_rate": 0.5, "staircase": True})
_PIECE = ("piecewise", {"boundaries": [1, 3], "values": [0.1, 0.05, 0.01]})
_COS = ("cosine", {"initial_learning_rate": 0.1, "decay_steps": 4, "alpha": 0.1})
_COS_WARM = ("cosine", {"initial_learning_rate": 0.0, "decay_steps": 3, "alpha": 0.0,
                        "warmup_target": 0.1, "warmup_steps": 2})


def _variants(base_lr, own):
    """The common options (clipping, weight decay, a schedule) plus an optimizer's own."""
    out = {"": {"learning_rate": base_lr}}
    for key, kw in own.items():
        out[key] = {"learning_rate": base_lr, **kw}
    out["clipnorm"] = {"learning_rate": base_lr, "clipnorm": 1.0}
    out["clipvalue"] = {"learning_rate": base_lr, "clipvalue": 0.5}
    out["global_clipnorm"] = {"learning_rate": base_lr, "global_clipnorm": 2.0}
    out["weight_decay"] = {"learning_rate": base_lr, "weight_decay": 0.05}
    out["exponential_decay"] = {"learning_rate": _EXP}
    return out


_OWN = {
    "sgd": (0.1, {"momentum": {"momentum": 0.9},
                  "nesterov": {"momentum": 0.9, "nesterov": True},
                  "momentum,weight_decay": {"momentum": 0.9, "weight_decay": 0.05},
                  "nesterov,global_clipnorm": {"momentum": 0.5, "nesterov": True,
                                               "global_clipnorm": 2.0},
                  "exponential_staircase": {"learning_rate": _EXP_STAIR},
                  "piecewise_constant": {"learning_rate": _PIECE},
                  "cosine_decay": {"learning_rate": _COS},
                  "cosine_warmup": {"learning_rate": _COS_WARM, "momentum": 0.9}}),
    "adam": (0.1, {"amsgrad": {"amsgrad": True},
                   "amsgrad,weight_decay": {"amsgrad": True, "weight_decay": 0.05},
                   "betas": {"beta_1": 0.5, "beta_2": 0.9, "epsilon": 1e-3},
                   "cosine_warmup": {"learning_rate": _COS_WARM}}),
    "adamw": (0.1, {"amsgrad": {"amsgrad": True},
                    "piecewise_constant": {"learning_rate": _PIECE}}),
    "rmsprop": (0.05, {"centered": {"centered": True},
                       "momentum": {"momentum": 0.9},
                       "centered,momentum": {"centered": True, "momentum": 0.5},
                       "rho": {"rho": 0.5, "epsilon": 1e-3}}),
    "adagrad": (0.1, {"initial_accumulator_value": {"initial_accumulator_value": 0.0}}),
    "adadelta": (1.0, {"rho": {"rho": 0.5, "epsilon": 1e-4}}),
    "adamax": (0.1, {"betas": {"beta_1": 0.5, "beta_2": 0.9}}),
    "nadam": (0.1, {"momentum_decay": {"momentum_decay": 0.1},
                    "cosine_decay": {"learning_rate": _COS}}),
    "lion": (0.01, {"betas": {"beta_1": 0.5, "beta_2": 0.9}}),
}

#: target name -> (optimizer name, constructor kwargs; a learning-rate tuple is a schedule)
CONFIGS: dict[str, tuple[str, dict]] = {}
for _name, (_lr, _own) in _OWN.items():
    for _key, _kw in _variants(_lr, _own).items():
        if _name == "adamw" and _key == "weight_decay":
            _kw = {**_kw, "weight_decay": 0.1}
        CONFIGS[f"{_name}[{_key}]" if _key else _name] = (_name, _kw)


def optimizer_cases(backend: str, device: str, dtypes, pattern=None) -> list[Case]:
    return [Case("optimizer", backend, device, dt, target)
            for target in CONFIGS for dt in dtypes if dt in OPTIMIZER_DTYPES]


# ---- the independent float64 reference ------------------------------------------------------
def _ref_lr(lr, step: int) -> float:
    """The learning rate at ``step`` (iterations before the update)."""
    if not isinstance(lr, tuple):
        return float(lr)
    kind, kw = lr
    if kind == "exponential":
        e = step / kw["decay_steps"]
        if kw.get("staircase"):
            e = math.floor(e)
        return kw["initial_learning_rate"] * kw["decay_rate"] ** e
    if kind == "piecewise":
        for b, v in zip(kw["boundaries"], kw["values"]):
            if step <= b:
                return v
        return kw["values"][-1]
    if kind == "cosine":
        lr0, ds, alpha = kw["initial_learning_rate"], kw["decay_steps"], kw.get("alpha", 0.0)
        target, ws = kw.get("warmup_target"), kw.get("warmup_steps", 0)
        if target is None:
            s = min(step, ds)
            return lr0 * ((1 - alpha) * 0.5 * (1 + math.cos(math.pi * s / ds)) + alpha)
        s = min(step, ds + ws)
        if s < ws:
            return lr0 + (target - lr0) * s / ws
        frac = (s - ws) / ds
        return target * ((1 - alpha) * 0.5 * (1 + math.cos(math.pi * frac)) + alpha)
    raise ValueError(kind)


def _ref_clip(grads, kw):
    if kw.get("clipvalue") is not None:
        c = kw["clipvalue"]
        return [np.minimum(np.maximum(g, -c), c) for g in grads]
    if kw.get("clipnorm") is not None:
        c = kw["clipnorm"]
        out = []
        for g in grads:
            n = math.sqrt(float(np.sum(g * g)))
            out.append(g * (c / n) if n > c else g)
        return out
    if kw.get("global_clipnorm") is not None:
        c = kw["global_clipnorm"]
        n = math.sqrt(sum(float(np.sum(g * g)) for g in grads))
        return [g * (c / n) for g in grads] if n > c else grads
    return grads


class _RefOptimizer:
    """Float64 NumPy versions of the documented updates (one state dict per variable)."""

    def __init__(self, name, kw):
        self.name, self.kw = name, kw
        self.t = 0
        self.mu_product = 1.0

    def step(self, params, grads, states):
        kw, name = self.kw, self.name
        lr = _ref_lr(kw.get("learning_rate", 0.001), self.t)
        self.t += 1
        t = self.t
        grads = _ref_clip(grads, kw)
        wd = kw.get("weight_decay") or 0.0
        if name == "adamw" and "weight_decay" not in kw:
            wd = 0.004
        decoupled = name in ("adamw", "lion")
        if name == "nadam":
            psi = kw.get("momentum_decay", 0.004)
            b1 = kw.get("beta_1", 0.9)
            mu = b1 * (1 - 0.5 * 0.96 ** (t * psi))
            mu_next = b1 * (1 - 0.5 * 0.96 ** ((t + 1) * psi))
            self.mu_product *= mu
            self.nadam = (mu, mu_next, self.mu_product)
        out = []
        for p, g, st in zip(params, grads, states):
            if wd and not decoupled:
                g = g + wd * p
            if wd and decoupled:
                p = p * (1 - lr * wd)
            out.append(getattr(self, "_" + name.replace("adamw", "adam"))(p, g, st, lr, t))
        return out

    def _sgd(self, p, g, st, lr, t):
        mu = self.kw.get("momentum", 0.0)
        if mu:
            b = st.get("b", 0.0) * mu + g
            st["b"] = b
            d = g + mu * b if self.kw.get("nesterov") else b
        else:
            d = g
        return p - lr * d

    def _adam(self, p, g, st, lr, t):
        b1, b2 = self.kw.get("beta_1", 0.9), self.kw.get("beta_2", 0.999)
        eps = self.kw.get("epsilon", 1e-7)
        st["m"] = b1 * st.get("m", 0.0) + (1 - b1) * g
        st["v"] = b2 * st.get("v", 0.0) + (1 - b2) * g * g
        v = st["v"]
        if self.kw.get("amsgrad"):
            st["vmax"] = np.maximum(st.get("vmax", 0.0), v)
            v = st["vmax"]
        m_hat = st["m"] / (1 - b1 ** t)
        return p - lr * m_hat / (np.sqrt(v / (1 - b2 ** t)) + eps)

    def _rmsprop(self, p, g, st, lr, t):
        rho, eps = self.kw.get("rho", 0.9), self.kw.get("epsilon", 1e-7)
        mu = self.kw.get("momentum", 0.0)
        st["s"] = rho * st.get("s", 0.0) + (1 - rho) * g * g
        var = st["s"]
        if self.kw.get("centered"):
            st["a"] = rho * st.get("a", 0.0) + (1 - rho) * g
            var = var - st["a"] ** 2
        step = g / (np.sqrt(var) + eps)
        if mu:
            st["b"] = mu * st.get("b", 0.0) + step
            step = st["b"]
        return p - lr * step

    def _adagrad(self, p, g, st, lr, t):
        eps = self.kw.get("epsilon", 1e-7)
        st["acc"] = st.get("acc", self.kw.get("initial_accumulator_value", 0.1)) + g * g
        return p - lr * g / (np.sqrt(st["acc"]) + eps)

    def _adadelta(self, p, g, st, lr, t):
        rho, eps = self.kw.get("rho", 0.95), self.kw.get("epsilon", 1e-7)
        st["s"] = rho * st.get("s", 0.0) + (1 - rho) * g * g
        d = st.get("d", 0.0)
        delta = np.sqrt(d + eps) / np.sqrt(st["s"] + eps) * g
        st["d"] = rho * d + (1 - rho) * delta * delta
        return p - lr * delta

    def _adamax(self, p, g, st, lr, t):
        b1, b2 = self.kw.get("beta_1", 0.9), self.kw.get("beta_2", 0.999)
        eps = self.kw.get("epsilon", 1e-7)
        st["m"] = b1 * st.get("m", 0.0) + (1 - b1) * g
        st["u"] = np.maximum(b2 * st.get("u", 0.0), np.abs(g) + eps)
        return p - lr / (1 - b1 ** t) * st["m"] / st["u"]

    def _nadam(self, p, g, st, lr, t):
        b1, b2 = self.kw.get("beta_1", 0.9), self.kw.get("beta_2", 0.999)
        eps = self.kw.get("epsilon", 1e-7)
        mu, mu_next, prod = self.nadam
        st["m"] = b1 * st.get("m", 0.0) + (1 - b1) * g
        st["v"] = b2 * st.get("v", 0.0) + (1 - b2) * g * g
        denom = np.sqrt(st["v"] / (1 - b2 ** t)) + eps
        return (p - lr * (1 - mu) / (1 - prod) * g / denom
                - lr * mu_next / (1 - prod * mu_next) * st["m"] / denom)

    def _lion(self, p, g, st, lr, t):
        b1, b2 = self.kw.get("beta_1", 0.9), self.kw.get("beta_2", 0.99)
        m = st.get("m", 0.0)
        c = b1 * m + (1 - b1) * g
        st["m"] = b2 * m + (1 - b2) * g
        return p - lr * np.sign(c)


def case_data(target: str, dtype: str):
    """Starting values and the gradient sequence of a target, rounded to ``dtype``."""
    rng = np.random.default_rng(case_seed("optimizer-data", target))
    np_dt = np.float32 if dtype == "float32" else np.float64
    start = [rng.uniform(-2.0, 2.0, size=s).astype(np_dt) for s in SHAPES]
    grads = [[(rng.standard_normal(s) * scale).astype(np_dt) for s in SHAPES]
             for scale in SCALES]
    return start, grads


def reference_trajectory(target: str, start, grads):
    """The float64 parameters after each step, by the independent reference."""
    name, kw = CONFIGS[target]
    ref = _RefOptimizer(name, kw)
    params = [np.asarray(s, np.float64) for s in start]
    states = [{} for _ in params]
    out = []
    for gs in grads:
        params = ref.step(params, [np.asarray(g, np.float64) for g in gs], states)
        out.append([np.array(p) for p in params])
    return out


# ---- running a case -------------------------------------------------------------------------
def _make_schedule(lr):
    if not isinstance(lr, tuple):
        return lr
    from unidl.optimizers import schedules

    kind, kw = lr
    cls = {"exponential": schedules.ExponentialDecay,
           "piecewise": schedules.PiecewiseConstantDecay,
           "cosine": schedules.CosineDecay}[kind]
    return cls(**kw)


def make_optimizer(target: str):
    from unidl import optimizers

    name, kw = CONFIGS[target]
    kw = dict(kw)
    if "learning_rate" in kw:
        kw["learning_rate"] = _make_schedule(kw["learning_rate"])
    return optimizers.get(name, **kw)


def run_optimizer(case: Case) -> Result:
    """Run :data:`STEPS` steps of the case's optimizer; the result keeps the worst error."""
    from unidl import ops

    seed = case_seed("optimizer-data", case.target)
    rtol, atol = OPTIMIZER_TOLERANCES[case.dtype]
    result = Result(case, "pass", seed=seed, rtol=rtol, atol=atol)
    start, grads = case_data(case.target, case.dtype)
    expected = reference_trajectory(case.target, start, grads)
    try:
        with unidl.use_backend(case.backend), unidl.device(case.device), \
                np.errstate(all="ignore"):
            opt = make_optimizer(case.target)
            variables = [unidl.Variable(s, name=f"v{i}") for i, s in enumerate(start)]
            for k, gs in enumerate(grads):
                native = [ops.convert_to_tensor(g) for g in gs]
                if k % 2:
                    opt.apply_gradients(zip(native, variables))
                else:
                    opt.apply(native, variables)
                for i, (v, e) in enumerate(zip(variables, expected[k])):
                    label = f"{case.target} step {k + 1} variable {i} {v.shape}"
                    if v.dtype != case.dtype:
                        result.status = "fail"
                        result.message = f"{label}: dtype became {v.dtype}"
                        return result
                    cmp = compare(v.numpy(), e, rtol, atol)
                    if cmp.ratio >= result.ratio:
                        result.ratio, result.max_abs, result.max_rel = (cmp.ratio, cmp.max_abs,
                                                                        cmp.max_rel)
                    if not cmp.ok:
                        result.status = "fail"
                        result.message = f"{label}: {cmp.message}"
                        return result
            it = int(opt.iterations.numpy())
            if it != len(grads):
                result.status = "fail"
                result.message = f"{case.target}: iterations is {it} after {len(grads)} steps"
    except Exception as exc:
        result.status = "fail"
        result.message = f"{case.target}: raised {type(exc).__name__}: {exc}"
    return result
