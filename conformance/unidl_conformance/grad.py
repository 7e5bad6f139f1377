"""Gradient conformance: every differentiable op, on a backend/device/dtype.

Two independent oracles:

* **finite differences** (float64): the vector-Jacobian product ``<vjp(u), v>`` must equal
  the central difference ``(<u, f(x + eps v)> - <u, f(x - eps v)>) / (2 eps)`` for random
  directions ``u`` and ``v`` (the directional form of ``torch.autograd.gradcheck``);
* **the NumPy engine**: each backend's gradient equals the one unidl's own engine computes
  from the spec's gradient rules in float64 on the same (rounded) inputs. For the NumPy
  backend itself this checks its gradients (with its gradient kernels) against the spec's
  rules in float64.

Tolerances: :data:`unidl.tolerances.GRAD_TOLERANCES` of the dtype under test.
"""

from __future__ import annotations

import numpy as np

import unidl
from unidl import dtypes as _dt
from unidl import ops
from unidl.autodiff.engine import spec_rules_only
from unidl.spec import all_specs, get_spec
from unidl.tolerances import GRAD_TOLERANCES
from unidl_conformance.cases import Case, Result, case_seed
from unidl_conformance.compare import compare
from unidl_conformance.forward import call_op, make_inputs

__all__ = ["grad_cases", "run_grad", "GRAD_DTYPES", "FD_EPS"]

GRAD_DTYPES = ("float32", "float64")
FD_EPS = 1e-6


def _differentiable(spec) -> bool:
    return spec.differentiable and (spec.grad is not None or spec.kind == "composite")


def grad_cases(backend: str, device: str, dtypes, pattern=None) -> list[Case]:
    out = []
    for spec in all_specs():
        if spec.samples is None or not _differentiable(spec):
            continue
        for dt in dtypes:
            if dt in GRAD_DTYPES and dt in spec.dtypes:
                out.append(Case("grad", backend, device, dt, spec.name))
    return out


def _slots(spec, args, sample):
    """(position, list index) of every floating tensor argument to differentiate."""
    slots = []
    for i in spec.tensor_pos:
        if i in sample.keep or args[i] is None or not ops.is_tensor(args[i]):
            continue
        if _dt.is_float(ops.dtype(args[i])):
            slots.append((i, None))
    for i in spec.tensor_list_pos:
        if i in sample.keep:
            continue
        for j, a in enumerate(args[i]):
            if _dt.is_float(ops.dtype(a)):
                slots.append((i, j))
    return slots


def _function(spec, args, slots):

    def f(*diff):
        full = list(args)
        for (i, j), d in zip(slots, diff):
            if j is None:
                full[i] = d
            else:
                seq = list(full[i])
                seq[j] = d
                full[i] = seq
        out = call_op(spec, full)
        outs = list(out) if isinstance(out, (list, tuple)) else [out]
        return [o for o in outs if _dt.is_float(ops.dtype(o))]

    return f


def _vjp_numpy(f, diff, cts):
    """The reference: unidl's engine with the spec's gradient rules (no backend kernels)."""
    with spec_rules_only():
        outs, vjp_fn = unidl.vjp(f, *diff)
        return [ops.to_numpy(o) for o in outs], [ops.to_numpy(g) for g in vjp_fn(list(cts))]


def _to_backend(arrays, dtype):
    return [ops.convert_to_tensor(np.asarray(a), dtype) for a in arrays]


def run_grad(case: Case) -> Result:
    spec = get_spec(case.target)
    seed = case_seed("grad", case.target, case.dtype)
    rng = np.random.default_rng(seed)
    rtol, atol = GRAD_TOLERANCES[case.dtype]
    result = Result(case, "pass", seed=seed, rtol=rtol, atol=atol)
    for sample in spec.samples(case.dtype, rng):
        if not sample.grad:
            continue
        label = f"{case.target}[{sample.name}]"
        try:
            with unidl.use_backend(case.backend), unidl.device(case.device), \
                    np.errstate(all="ignore"):
                args = make_inputs(spec, sample, case.dtype)
                slots = _slots(spec, args, sample)
                if not slots:
                    continue
                f = _function(spec, args, slots)
                diff = [args[i] if j is None else args[i][j] for i, j in slots]
                outs, vjp_fn = unidl.vjp(f, *diff)
                if not outs:
                    continue
                cts_np = [rng.standard_normal(ops.shape(o)) for o in outs]
                cts = _to_backend(cts_np, case.dtype)
                grads = [ops.to_numpy(g) for g in vjp_fn(cts)]
                diff_np = [ops.to_numpy(d) for d in diff]
                # the NumPy engine is the reference; for numpy itself in float32, its float64 run
                fd = None
                if case.dtype == "float64":
                    dirs = [rng.standard_normal(np.shape(d)) for d in diff_np]
                    plus = f(*_to_backend([d + FD_EPS * v for d, v in zip(diff_np, dirs)],
                                          "float64"))
                    minus = f(*_to_backend([d - FD_EPS * v for d, v in zip(diff_np, dirs)],
                                           "float64"))
                    fd = sum(float(np.sum(c * (ops.to_numpy(p) - ops.to_numpy(m))))
                             for c, p, m in zip(cts_np, plus, minus)) / (2 * FD_EPS)
                    analytic = sum(float(np.sum(g.astype(np.float64) * v))
                                   for g, v in zip(grads, dirs))
        except Exception as exc:
            result.status = "fail"
            result.message = f"{label}: raised {type(exc).__name__}: {exc}"
            return result
        if fd is not None:
            cmp = compare(np.array(analytic), np.array(fd), rtol, atol)
            if not cmp.ok:
                result.status = "fail"
                result.ratio = cmp.ratio
                result.message = (f"{label}: vjp disagrees with central finite differences: "
                                  f"analytic {analytic!r}, numeric {fd!r}")
                return result
            result.ratio = max(result.ratio, cmp.ratio)
        try:
            with unidl.use_backend("numpy"), np.errstate(all="ignore"):
                ref_args = list(args)
                for i in spec.tensor_pos:
                    if ref_args[i] is not None and _is_backend_tensor(ref_args[i], case):
                        ref_args[i] = _ref_tensor(ref_args[i], case)
                for i in spec.tensor_list_pos:
                    ref_args[i] = [_ref_tensor(a, case) for a in ref_args[i]]
                ref_f = _function(spec, ref_args, slots)
                ref_diff = [ops.convert_to_tensor(d.astype(np.float64)) for d in diff_np]
                _, ref_grads = _vjp_numpy(ref_f, ref_diff, [c.astype(np.float64)
                                                           for c in _round(cts_np, case.dtype)])
        except Exception as exc:
            result.status = "fail"
            result.message = f"{label}: NumPy engine raised {type(exc).__name__}: {exc}"
            return result
        for k, (g, r) in enumerate(zip(grads, ref_grads)):
            cmp = compare(g, r, rtol, atol)
            if cmp.ratio >= result.ratio:
                result.ratio, result.max_abs, result.max_rel = cmp.ratio, cmp.max_abs, cmp.max_rel
            if not cmp.ok:
                result.status = "fail"
                result.message = (f"{label}: gradient of input {k} differs from the NumPy "
                                  f"engine's float64 gradient: {cmp.message}")
                return result
    return result


def _round(arrays, dtype):
    return [np.asarray(a, dtype=np.float32 if dtype == "float32" else np.float64)
            for a in arrays]


def _is_backend_tensor(x, case):
    return not isinstance(x, (int, float, str, tuple, list, type(None)))


def _ref_tensor(x, case):
    """A backend tensor (or sample value) as a NumPy-backend float64/int array."""
    with unidl.use_backend(case.backend):
        arr = ops.to_numpy(x)
    arr = np.asarray(arr)
    if arr.dtype.kind == "f" or arr.dtype.name == "bfloat16":
        arr = arr.astype(np.float64)
    return arr
