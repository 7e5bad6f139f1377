"""The graphviz path of ``plot_model``: the graph as DOT text, laid out and drawn by the
``dot`` program when it is installed (found on ``PATH``; the ``graphviz`` Python package is
not needed, it calls the same program).

Example:
    >>> from unidl.utils.dot import dot_quote
    >>> print(dot_quote('dense "1"\\nout: (None, 2)'))
    "dense \\"1\\"\\nout: (None, 2)"
"""

from __future__ import annotations

import shutil
import subprocess

from unidl.utils._common import PlotError

__all__ = ["find_dot", "dot_quote", "to_dot", "run_dot"]

_TIMEOUT_S = 60


def find_dot() -> str | None:
    """The path of graphviz's ``dot`` program, or ``None`` when it is not installed."""
    return shutil.which("dot")


def dot_quote(text: str) -> str:
    """``text`` as a quoted DOT string (newlines as ``\\n``, centred lines)."""
    body = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{body}"'


def to_dot(graph, labels, styles, rankdir: str = "TB", dpi: float | None = None,
           title: str = "") -> str:
    """DOT text for a :class:`~unidl.utils.model_graph.ModelGraph`: ``labels[i]``: node
    ``i``'s lines; ``styles[i]``: its ``(fill, stroke, double)``."""
    attrs = [f"rankdir={rankdir}", 'fontname="DejaVu Sans Mono"', "labelloc=t",
             "labeljust=l", "fontsize=11", "nodesep=0.3", "ranksep=0.4"]
    if dpi is not None:
        attrs.append(f"dpi={dpi:g}")
    if title:
        attrs.append(f"label={dot_quote(title)}")
    out = [f"digraph {dot_quote(graph.name)} {{", f"  graph [{', '.join(attrs)}];",
           '  node [shape=box, style="rounded,filled", fontname="DejaVu Sans Mono", '
           "fontsize=10, margin=\"0.15,0.06\"];",
           '  edge [color="#455a64", arrowsize=0.7'
           + (", style=dashed" if graph.dashed else "") + "];"]
    for i, lines in enumerate(labels):
        fill, stroke, double = styles[i]
        extra = ", peripheries=2" if double else ""
        out.append(f"  n{i} [label={dot_quote(chr(10).join(lines))}, "
                   f'fillcolor="{fill}", color="{stroke}"{extra}];')
    for u, v in graph.edges:
        out.append(f"  n{u} -> n{v};")
    out.append("}")
    return "\n".join(out) + "\n"


def run_dot(source: str, fmt: str, dot: str) -> bytes:
    """The ``fmt`` image graphviz's ``dot`` program makes of DOT ``source``; a
    :class:`PlotError` with dot's message when it fails."""
    try:
        proc = subprocess.run([dot, f"-T{fmt}"], input=source.encode("utf-8"),
                              capture_output=True, timeout=_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise PlotError(f"plot_model: graphviz's dot ({dot}) could not run: {exc}") from exc
    if proc.returncode != 0 or not proc.stdout:
        message = proc.stderr.decode("utf-8", "replace").strip()[-500:]
        raise PlotError(f"plot_model: graphviz's dot ({dot}) failed with exit status "
                        f"{proc.returncode}: {message or 'no output'}")
    return proc.stdout
