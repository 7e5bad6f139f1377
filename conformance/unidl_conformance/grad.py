"""Gradient conformance: every differentiable op, on a backend/device/dtype.

Two independent oracles:

* **finite differences** (float64): the vector-Jacobian product ``<vjp(u), v>`` must equal
  the central difference ``(<u, f(x + eps v)> - <u, f(x - eps v)>) / (2 eps)`` for random
  directions ``u`` and ``v`` (the directional form of ``torch.autograd.gradcheck``);
* **the reference backend** (:mod:`unidl_conformance.reference`, NumPy by default): each
  backend's gradient equals the reference backend's float64 gradient on the same (rounded)
  inputs. For a reference differentiated by unidl's own engine (NumPy) that is the engine with
  the spec's gradient rules only, so for the reference backend itself this checks its
  gradients (with its gradient kernels) against the spec's rules in float64; a natively
  differentiated reference (torch, tensorflow) uses its framework's autodiff.

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
from unidl_conformance.reference import reference_backend, reference_device, uses_own_engine

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


def _vjp_reference(f, diff, cts):
    """The reference gradient, on the active (reference) backend: unidl's engine with the
    spec's gradient rules only (no backend gradient kernels), or the framework's autodiff for
    a natively differentiated reference backend."""
    with spec_rules_only():
        outs, vjp_fn = unidl.vjp(f, *diff)
        return [ops.to_numpy(o) for o in outs], [ops.to_numpy(g) for g in vjp_fn(list(cts))]


def reference_label() -> str:
    """What the gradients are compared with, for messages: ``unidl's engine on numpy``."""
    ref = reference_backend()
    return f"unidl's engine on {ref}" if uses_own_engine(ref) else f"{ref}'s autodiff"


def _to_backend(arrays, dtype):
    return [ops.convert_to_tensor(np.asarray(a), dtype) for a in arrays]


def _finite_difference(f, diff_np, grads, cts_np, rng):
    """``(analytic, numeric)``: ``<vjp(u), v>`` and the central difference along a random
    direction ``v`` (float64, on the active backend)."""
    dirs = [rng.standard_normal(np.shape(d)) for d in diff_np]
    plus = f(*_to_backend([d + FD_EPS * v for d, v in zip(diff_np, dirs)], "float64"))
    minus = f(*_to_backend([d - FD_EPS * v for d, v in zip(diff_np, dirs)], "float64"))
    fd = sum(float(np.sum(c * (ops.to_numpy(p) - ops.to_numpy(m))))
             for c, p, m in zip(cts_np, plus, minus)) / (2 * FD_EPS)
    analytic = sum(float(np.sum(g.astype(np.float64) * v)) for g, v in zip(grads, dirs))
    return analytic, fd


def _backend_side(spec, sample, case: Case, rng):
    """The sample's gradients on the case's backend/device: ``(args, slots, grads, diff_np,
    cts_np, fd)``, ``fd`` the finite-difference pair in float64 (else None); None when the
    sample has nothing to differentiate."""
    with unidl.use_backend(case.backend), unidl.device(case.device), np.errstate(all="ignore"):
        args = make_inputs(spec, sample, case.dtype)
        slots = _slots(spec, args, sample)
        if not slots:
            return None
        f = _function(spec, args, slots)
        diff = [args[i] if j is None else args[i][j] for i, j in slots]
        outs, vjp_fn = unidl.vjp(f, *diff)
        if not outs:
            return None
        cts_np = [rng.standard_normal(ops.shape(o)) for o in outs]
        grads = [ops.to_numpy(g) for g in vjp_fn(_to_backend(cts_np, case.dtype))]
        diff_np = [ops.to_numpy(d) for d in diff]
        fd = _finite_difference(f, diff_np, grads, cts_np, rng) \
            if case.dtype == "float64" else None
    return args, slots, grads, diff_np, cts_np, fd


def _reference_side(spec, case: Case, args, slots, diff_np, cts_np):
    """The same gradients on the reference backend in float64, from the case's inputs and
    cotangents rounded to its dtype."""
    with unidl.use_backend(reference_backend()), unidl.device(reference_device()), \
            np.errstate(all="ignore"):
        ref_args = list(args)
        for i in spec.tensor_pos:
            if ref_args[i] is not None and _is_backend_tensor(ref_args[i], case):
                ref_args[i] = _ref_tensor(ref_args[i], case)
        for i in spec.tensor_list_pos:
            ref_args[i] = [_ref_tensor(a, case) for a in ref_args[i]]
        ref_f = _function(spec, ref_args, slots)
        ref_diff = [ops.convert_to_tensor(d.astype(np.float64)) for d in diff_np]
        cts = [c.astype(np.float64) for c in _round(cts_np, case.dtype)]
        return _vjp_reference(ref_f, ref_diff, cts)[1]


def _fail(result: Result, message: str, ratio: float | None = None) -> Result:
    result.status, result.message = "fail", message
    if ratio is not None:
        result.ratio = ratio
    return result


def run_grad(case: Case) -> Result:
    """Check every sample's gradients on ``case``: against finite differences (float64) and
    against the reference backend's float64 gradient; the result keeps the worst error."""
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
            side = _backend_side(spec, sample, case, rng)
        except Exception as exc:
            return _fail(result, f"{label}: raised {type(exc).__name__}: {exc}")
        if side is None:
            continue
        args, slots, grads, diff_np, cts_np, fd = side
        if fd is not None:
            analytic, numeric = fd
            cmp = compare(np.array(analytic), np.array(numeric), rtol, atol)
            if not cmp.ok:
                return _fail(result, f"{label}: vjp disagrees with central finite differences: "
                                     f"analytic {analytic!r}, numeric {numeric!r}", cmp.ratio)
            result.ratio = max(result.ratio, cmp.ratio)
        try:
            ref_grads = _reference_side(spec, case, args, slots, diff_np, cts_np)
        except Exception as exc:
            return _fail(result, f"{label}: the reference ({reference_label()}) raised "
                                 f"{type(exc).__name__}: {exc}")
        for k, (g, r) in enumerate(zip(grads, ref_grads)):
            cmp = compare(g, r, rtol, atol)
            if cmp.ratio >= result.ratio:
                result.ratio, result.max_abs, result.max_rel = cmp.ratio, cmp.max_abs, cmp.max_rel
            if not cmp.ok:
                return _fail(result, f"{label}: gradient of input {k} differs from the float64 "
                                     f"gradient of {reference_label()}: {cmp.message}")
    return result


def _round(arrays, dtype):
    return [np.asarray(a, dtype=np.float32 if dtype == "float32" else np.float64)
            for a in arrays]


def _is_backend_tensor(x, case):
    return not isinstance(x, (int, float, str, tuple, list, type(None)))


def _ref_tensor(x, case):
    """A backend tensor (or sample value) as a host float64/int array (for the reference)."""
    with unidl.use_backend(case.backend):
        arr = ops.to_numpy(x)
    arr = np.asarray(arr)
    if arr.dtype.kind == "f" or arr.dtype.name == "bfloat16":
        arr = arr.astype(np.float64)
    return arr
