"""Forward conformance: every op, on a backend/device/dtype, against the float64 reference."""

from __future__ import annotations

import numpy as np

import unidl
from unidl import dtypes as _dt
from unidl import ops
from unidl.spec import all_specs, get_spec
from unidl.spec.core import reference_float64
from unidl.tolerances import tolerance
from unidl_conformance.cases import Case, Result, case_seed
from unidl_conformance.compare import compare

__all__ = ["forward_cases", "run_forward", "make_inputs", "call_op"]


def forward_cases(backend: str, device: str, dtypes, pattern=None) -> list[Case]:
    out = []
    for spec in all_specs():
        if spec.samples is None or spec.reference is None:
            continue
        for dt in dtypes:
            if dt in spec.dtypes:
                out.append(Case("forward", backend, device, dt, spec.name))
    return out


def make_inputs(spec, sample, dtype):
    """Backend tensors for ``sample`` (tensor arguments cast to ``dtype``)."""
    args = list(sample.args)
    for i in spec.tensor_pos + spec.tensor_list_pos:
        if i >= len(args) or args[i] is None:
            continue
        target = None if i in sample.keep else dtype
        if i in spec.tensor_list_pos:
            args[i] = [ops.convert_to_tensor(np.asarray(a), target) for a in args[i]]
        elif isinstance(args[i], np.ndarray):
            args[i] = ops.convert_to_tensor(args[i], target)
    return args


def _to_reference_args(spec, args):
    ref = list(args)
    for i in spec.tensor_pos:
        if ref[i] is not None and ops.is_tensor(ref[i]):
            ref[i] = _f64(ops.to_numpy(ref[i]))
    for i in spec.tensor_list_pos:
        ref[i] = [_f64(ops.to_numpy(a)) for a in ref[i]]
    return ref


def _f64(a):
    a = np.asarray(a)
    if a.dtype.kind == "f" or a.dtype.name == "bfloat16":
        return a.astype(np.float32).astype(np.float64) if a.dtype.name == "bfloat16" \
            else a.astype(np.float64)
    return a


def call_op(spec, args):
    """Call op ``spec`` with canonical ``args`` (a varargs parameter arrives as one tuple)."""
    op = getattr(ops, spec.name)
    if spec.varargs:
        return op(*args[:-1], *args[-1])
    return op(*args)


def _flatten(out):
    if isinstance(out, (list, tuple)):
        return list(out)
    return [out]


def _on_cpu(spec, sample, dtype):
    """The outputs of ``sample`` computed on the active backend's ``cpu`` device."""
    with unidl.device("cpu"):
        return [ops.to_numpy(o) if ops.is_tensor(o) else o
                for o in _flatten(call_op(spec, make_inputs(spec, sample, dtype)))]


def run_forward(case: Case) -> Result:
    """Run every sample of the op in ``case``; the result keeps the worst error.

    On a device other than ``cpu`` each output is also compared, under the same tolerance,
    with the same backend's result on its ``cpu`` device.
    """
    spec = get_spec(case.target)
    seed = case_seed("forward", case.target, case.dtype)
    rng = np.random.default_rng(seed)
    result = Result(case, "pass", seed=seed)
    with unidl.use_backend(case.backend), unidl.device(case.device), np.errstate(all="ignore"):
        vs_cpu = case.device != "cpu" and "cpu" in unidl.devices()
        for sample in spec.samples(case.dtype, rng):
            label = f"{case.target}[{sample.name}]"
            try:
                args = make_inputs(spec, sample, case.dtype)
                got = _flatten(call_op(spec, args))
            except Exception as exc:
                result.status = "fail"
                result.message = f"{label}: raised {type(exc).__name__}: {exc}"
                return result
            expected = _flatten(reference_float64(spec, _to_reference_args(spec, args)))
            abstract = list(args)
            for i in spec.tensor_pos:
                if abstract[i] is not None:
                    abstract[i] = ops.dtype(abstract[i])
            for i in spec.tensor_list_pos:
                abstract[i] = [ops.dtype(a) for a in abstract[i]]
            want_dtypes = spec.result_dtype(abstract)
            if not isinstance(want_dtypes, (list, tuple)):
                want_dtypes = [want_dtypes] * len(got)
            if len(got) != len(expected):
                result.status = "fail"
                result.message = f"{label}: {len(got)} outputs, expected {len(expected)}"
                return result
            cpu_got = None
            if vs_cpu:
                try:
                    cpu_got = _on_cpu(spec, sample, case.dtype)
                except Exception as exc:
                    result.status = "fail"
                    result.message = (f"{label}: raised {type(exc).__name__} on "
                                      f"{case.backend}/cpu: {exc}")
                    return result
            for k, (g, e, wd) in enumerate(zip(got, expected, want_dtypes)):
                gd = ops.dtype(g)
                if gd != wd:
                    result.status = "fail"
                    result.message = f"{label}: output {k} has dtype {gd}, expected {wd}"
                    return result
                if ops.is_tensor(g) and case.device != "cpu":
                    dev = unidl.current_backend().device_of(g)
                    if dev != case.device:
                        result.status = "fail"
                        result.message = f"{label}: output on {dev}, expected {case.device}"
                        return result
                rtol, atol = tolerance(gd, spec.tol) if _dt.is_float(gd) else (0.0, 0.0)
                if _dt.is_float(gd) and spec.tol != "exact":
                    # inputs were rounded to the case dtype: judge by the coarser of the two
                    rtol, atol = max((rtol, atol), tolerance(case.dtype, spec.tol)) \
                        if _dt.is_float(case.dtype) else (rtol, atol)
                if spec.tol == "exact" and _dt.is_float(gd):
                    # an exact float result is one correctly rounded operation: the float64
                    # reference rounded once to the output's dtype, then bit for bit
                    e = np.asarray(e).astype(_dt.numpy_dtype(gd))
                cmp = compare(ops.to_numpy(g), e, rtol, atol)
                result.rtol, result.atol = rtol, atol
                if cmp.ratio >= result.ratio:
                    result.ratio, result.max_abs, result.max_rel = cmp.ratio, cmp.max_abs, \
                        cmp.max_rel
                if not cmp.ok:
                    result.status = "fail"
                    result.message = f"{label} output {k}: {cmp.message}"
                    return result
                if cpu_got is not None:
                    cmp = compare(ops.to_numpy(g), cpu_got[k], rtol, atol)
                    result.ratio = max(result.ratio, cmp.ratio)
                    if not cmp.ok:
                        result.status = "fail"
                        result.message = (f"{label} output {k} on {case.backend}/{case.device} "
                                          f"differs from {case.backend}/cpu: {cmp.message}")
                        return result
    return result
