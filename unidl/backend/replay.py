"""A recorded tape (:mod:`unidl.backend.tape`) as one straight-line Python function.

Replaying a tape entry by entry costs ~1.5 us of interpreter work per kernel call (copying
the argument template, filling in the references, storing the results); for a small step of
a dozen kernel calls that is as much as the kernels' own dispatch. The function made here
does the same calls with every value in a local variable, e.g. for an MLP's evaluation::

    def replay(inputs):
        v0, v1 = inputs
        v2 = f0(v0, c0, c1)
        v3 = f1(v2)
        del v2
        ...
        return v7

The source is generated from the tape in memory (never read from a file) and compiled once,
the first time the tape is replayed.
"""

from __future__ import annotations

__all__ = ["straight_line"]


class _Source:
    """The lines and the namespace (kernels, constants) of one generated function."""

    def __init__(self, ref_class, seq_class):
        self.ref_class, self.seq_class = ref_class, seq_class
        self.lines = []
        self.names = {}

    def name(self, prefix, value):
        key = f"{prefix}{len(self.names)}"
        self.names[key] = value
        return key

    def expr(self, template) -> str:
        """The expression of an argument template: a local, a rebuilt sequence, a constant."""
        c = template.__class__
        if c is self.ref_class:
            return f"v{template.i}"
        if c is self.seq_class:
            items = ", ".join(self.expr(t) for t in template.items)
            if template.kind is list:
                return f"[{items}]"
            if template.kind is tuple:
                return f"({items},)" if template.items else "()"
            return f"{self.name('k', template.kind)}(({items},))"
        return self.name("c", template)

    def call(self, fn, args, outs):
        call = f"{self.name('f', fn)}({', '.join(self.expr(a) for a in args)})"
        if outs.__class__ is int:
            self.lines.append(f"v{outs} = {call}")
        elif outs is None:
            self.lines.append(call)
        else:  # (a sequence of results: some of them arrays)
            self.lines += [f"o = {call}", f"if len(o) != {len(outs)}: changed()"]
            for k, slot in enumerate(outs):
                if slot is not None:
                    self.lines += [f"v{slot} = o[{k}]", f"if v{slot} is None: changed()"]


def _changed():
    raise RuntimeError("unidl tape: a call's result changed structure")


def straight_line(n_inputs, steps, out_template, ref_class, seq_class):
    """``replay(inputs)``: the calls of ``steps`` (the tape's ``(fn, args, outs, free)``
    entries) in order, on ``inputs`` (the step's ``n_inputs`` arrays),
    returning the result built from ``out_template`` (``(treedef or None, templates)``)."""
    src = _Source(ref_class, seq_class)
    if n_inputs:
        src.lines.append(", ".join(f"v{i}" for i in range(n_inputs)) + ", = inputs")
    for fn, args, outs, free in steps:
        src.call(fn, args, outs)
        src.lines += [f"del v{i}" for i in free]  # (freed as the eager step frees them)
    treedef, leaves = out_template
    if treedef is None:
        src.lines.append(f"return {src.expr(leaves)}")
    else:
        from unidl import tree

        items = ", ".join(src.expr(t) for t in leaves)
        src.lines.append(f"return {src.name('u', tree.unflatten)}"
                         f"({src.name('t', treedef)}, [{items}])")
    body = "\n".join("    " + line for line in src.lines)
    namespace = {**src.names, "changed": _changed}
    exec(compile(f"def replay(inputs):\n{body}\n", "<unidl tape>", "exec"), namespace)
    return namespace["replay"]
