"""``grad``, ``value_and_grad`` and ``vjp``: one gradient API for every backend.

Arguments and results may be nested lists, tuples and dicts of tensors; arguments may also
be :class:`unidl.Variable` objects, whose gradient is taken with respect to their current
value (the function may read them through the argument or through a closure).

Example:
    >>> import unidl
    >>> from unidl import ops
    >>> with unidl.use_backend("numpy"):
    ...     g = unidl.grad(lambda x: ops.sum(ops.multiply(x, x)))(ops.convert_to_tensor([1.0, 2.0]))
    ...     ops.to_numpy(g).tolist()
    [2.0, 4.0]
"""

from __future__ import annotations

import functools

from unidl import dtypes as _dt
from unidl import tree
from unidl.backend.state import STATE, current_backend, follow_process
from unidl.errors import GradientError

__all__ = ["grad", "value_and_grad", "vjp", "stop_gradient"]


def stop_gradient(x):
    """``x`` with no gradient flowing back through it (same as ``ops.stop_gradient``)."""
    from unidl import ops

    return ops.stop_gradient(x)


def _is_variable(x) -> bool:
    return hasattr(x, "_unidl_swap")


_FLOATS = frozenset(_dt.FLOAT_DTYPES)


def _leaf_value(x, be, what: str):
    from unidl import ops

    if hasattr(x, "_unidl_swap"):
        return x.value
    try:
        return ops.convert_to_tensor(x)
    except Exception as exc:
        raise GradientError(f"{what}: cannot differentiate with respect to a "
                            f"{type(x).__name__} ({exc})") from None


def _vjp_flat(fn_flat, values, be):
    """Dispatch to the backend's native autodiff or to unidl's engine."""
    create_graph = STATE.grad_depth > 0
    STATE.grad_depth += 1
    try:
        if be.native_autodiff:
            return be.vjp(fn_flat, values, create_graph=create_graph)
        from unidl.autodiff.engine import engine_vjp

        return engine_vjp(be, STATE, fn_flat, values)
    finally:
        STATE.grad_depth -= 1
        if not STATE.grad_depth:
            follow_process()  # (a set_backend from another thread meanwhile)


def _call_with_leaves(fn, args, flat, treedef, leaves):
    """Call ``fn`` with ``args`` whose flattened leaves are replaced by ``leaves``.

    Variables keep their identity: their storage is swapped for the traced leaf during the call.
    """
    swapped = []
    call_leaves = []
    try:
        for orig, new in zip(flat, leaves):
            if hasattr(orig, "_unidl_swap"):
                swapped.append((orig, orig._unidl_swap(new)))
                call_leaves.append(orig)
            else:
                call_leaves.append(new)
        return fn(*tree.unflatten(treedef, call_leaves))
    finally:
        for var, old in reversed(swapped):
            var._unidl_swap(old)


def vjp(fn, *primals, has_aux=False):
    """Evaluate ``fn(*primals)`` and return ``(outputs, vjp_fn)`` (and ``aux`` if ``has_aux``).

    ``vjp_fn(cotangents)`` takes cotangents shaped like ``outputs`` and returns a tuple with
    one gradient per primal, shaped like it (zeros where the output does not depend on it).

    Example:
        >>> import unidl
        >>> from unidl import ops
        >>> with unidl.use_backend("numpy"):
        ...     out, f_vjp = unidl.vjp(lambda x: ops.multiply(x, 3.0), ops.ones((2,)))
        ...     ops.to_numpy(f_vjp(ops.ones((2,)))[0]).tolist()
        [3.0, 3.0]
    """
    from unidl import ops

    be = current_backend()
    native = be.tensor_types
    flat, treedef = tree.flatten(primals)
    values = [x.value if hasattr(x, "_unidl_swap") else _leaf_value(x, be, "vjp") for x in flat]
    info = {}

    def fn_flat(*leaves):
        out = _call_with_leaves(fn, primals, flat, treedef, leaves)
        if has_aux:
            if not (isinstance(out, (tuple, list)) and len(out) == 2):
                raise GradientError("has_aux=True needs the function to return (output, aux)")
            out, aux = out
            # aux is returned as a value: not differentiated (and never a traced value)
            info["aux"] = _stopped(aux, native)
        if out.__class__ in native:
            info["tree"] = None
            return [out]
        out_flat, info["tree"] = tree.flatten(out)
        return [o if o.__class__ in native or _traced(o) else ops.convert_to_tensor(o)
                for o in out_flat]

    out_values, raw_vjp = _vjp_flat(fn_flat, values, be)
    # (a single tensor output: no tree)
    outputs = out_values[0] if info["tree"] is None else tree.unflatten(info["tree"],
                                                                          out_values)

    def vjp_fn(cotangents):
        ct_flat = [cotangents] if cotangents.__class__ in native else tree.flatten(cotangents)[0]
        if len(ct_flat) != len(out_values):
            raise GradientError(f"vjp: got {len(ct_flat)} cotangents for {len(out_values)} "
                                "outputs; pass one per output, shaped like it")
        cts = []
        for o, c in zip(out_values, ct_flat):
            if (c.__class__ in native and o.__class__ in native and c.dtype == o.dtype
                    and c.shape == o.shape):
                cts.append(c)  # (the common case: nothing to convert or check)
                continue
            c = ops.convert_to_tensor(c, ops.dtype(o))
            if ops.shape(c) != ops.shape(o):
                raise GradientError(f"vjp: cotangent of shape {ops.shape(c)} for an output of "
                                    f"shape {ops.shape(o)}")
            cts.append(c)
        grads = raw_vjp(cts)
        filled = [g if g is not None else ops.zeros_like(v) for g, v in zip(grads, values)]
        return tuple(tree.unflatten(treedef, filled))

    if has_aux:
        return outputs, vjp_fn, info.get("aux")
    return outputs, vjp_fn


def _require_scalar(out, native):
    """``value_and_grad``'s check of the differentiated output: one tensor with one element
    (``native``: the backend's tensor types, the common case)."""
    from unidl import ops

    if out.__class__ in native:
        shape = tuple(out.shape)
    else:
        if not ops.is_tensor(out) and not _traced(out):
            raise GradientError(f"value_and_grad: the function must return one scalar "
                                f"tensor, got {type(out).__name__}")
        shape = ops.shape(out)
    if any(d != 1 for d in shape):
        raise GradientError(
            f"value_and_grad: the function returned a tensor of shape {shape}; gradients "
            "need a scalar output (reduce it, e.g. ops.sum, or use unidl.vjp with a "
            "cotangent)")


def _stopped(aux, native):
    """``aux`` (a tensor, or a structure holding tensors) with its gradient stopped:
    ``native`` are the backend's tensor types (the common single-tensor case)."""
    from unidl import ops

    if aux.__class__ in native:
        return ops.stop_gradient(aux)
    return tree.map_structure(lambda a: ops.stop_gradient(a) if ops.is_tensor(a) else a, aux)


def _traced(o) -> bool:
    return type(o).__name__ == "Tracer"


def _check_argnums(argnums, nargs, name):
    single = isinstance(argnums, int)
    nums = (argnums,) if single else tuple(argnums)
    for n in nums:
        if not isinstance(n, int) or not -nargs <= n < nargs:
            raise GradientError(f"{name}: argnums={argnums!r} is out of range for a function "
                                f"called with {nargs} positional argument(s)")
    return single, tuple(n % nargs for n in nums)


def value_and_grad(fn, argnums=0, has_aux=False):
    """A function returning ``(fn(*args), gradient)`` (``((value, aux), gradient)`` with aux).

    ``fn`` must return a scalar (a tensor with one element). The gradient is with respect
    to the positional argument(s) ``argnums`` (an int, or a tuple giving a tuple of
    gradients), each shaped like its argument (nested structures and Variables allowed).

    Raises:
        GradientError: ``fn``'s output is not a scalar; ``argnums`` is out of range; an
            argument to differentiate is an integer or boolean tensor.
    """

    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        from unidl import ops

        single, nums = _check_argnums(argnums, len(args), "value_and_grad")
        diff_args = tuple(args[n] for n in nums)
        for n, a in zip(nums, diff_args):
            for leaf in tree.flatten(a)[0]:
                d = leaf.dtype if hasattr(leaf, "_unidl_swap") else ops.dtype(leaf)
                if d not in _FLOATS and not _dt.is_float(_dt.standardize(d)):
                    raise GradientError(f"value_and_grad: argument {n} has dtype {d}; gradients "
                                        "are defined only for floating-point inputs")

        def partial(*diff):
            full = list(args)
            for n, d in zip(nums, diff):
                full[n] = d
            return fn(*full, **kwargs)

        res = vjp(partial, *diff_args, has_aux=has_aux)
        out, vjp_fn = res[0], res[1]
        _require_scalar(out, current_backend().tensor_types)
        grads = vjp_fn(ops.ones_like(out))
        g = grads[0] if single else grads
        if has_aux:
            return (out, res[2]), g
        return out, g

    return wrapped


def grad(fn, argnums=0, has_aux=False):
    """A function returning the gradient of scalar-valued ``fn`` (see :func:`value_and_grad`).

    Example:
        >>> import unidl
        >>> from unidl import ops
        >>> with unidl.use_backend("numpy"):
        ...     df = unidl.grad(lambda x, y: ops.sum(ops.multiply(x, y)), argnums=(0, 1))
        ...     gx, gy = df(ops.convert_to_tensor([1.0, 2.0]), ops.convert_to_tensor([3.0, 4.0]))
        ...     ops.to_numpy(gx).tolist(), ops.to_numpy(gy).tolist()
        ([3.0, 4.0], [1.0, 2.0])
    """
    vg = value_and_grad(fn, argnums=argnums, has_aux=has_aux)

    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        value, g = vg(*args, **kwargs)
        if has_aux:
            return g, value[1]
        return g

    return wrapped


def variables_value_and_grad(fn, variables):
    """``((loss, aux), grads)`` of ``fn() -> (loss, aux)`` with respect to ``variables``
    (a flat list of trainable :class:`unidl.Variable`, read by ``fn`` through a closure).

    The train step's path: ``value_and_grad(fn, has_aux=True)(variables)`` without the
    generality it does not need (no nesting to flatten, no argument checks per call), so
    the Python work around the backend's autodiff stays small. ``aux`` is returned with its
    gradient stopped.

    Example:
        >>> import unidl
        >>> from unidl import ops
        >>> from unidl.autodiff.api import variables_value_and_grad
        >>> with unidl.use_backend("numpy"):
        ...     v = unidl.Variable(ops.convert_to_tensor([1.0, 2.0]))
        ...     (loss, _), (g,) = variables_value_and_grad(
        ...         lambda: (ops.sum(ops.multiply(v.value, v.value)), None), [v])
        ...     float(loss), ops.to_numpy(g).tolist()
        (5.0, [2.0, 4.0])
    """
    from unidl import ops

    be = current_backend()
    values = [v.value for v in variables]
    box = []

    def fn_flat(*leaves):
        old = [v._unidl_swap(leaf) for v, leaf in zip(variables, leaves)]
        try:
            loss, aux = fn()
        finally:
            for v, prev in zip(variables, old):
                v._unidl_swap(prev)
        box.append(_stopped(aux, be.tensor_types))  # (inside: a value, never a traced one)
        return [loss]

    out, raw_vjp = _vjp_flat(fn_flat, values, be)
    loss = out[0]
    _require_scalar(loss, be.tensor_types)
    grads = raw_vjp([ops.ones_like(loss)])
    grads = [g if g is not None else ops.zeros_like(v) for g, v in zip(grads, values)]
    return (loss, box[0]), grads
