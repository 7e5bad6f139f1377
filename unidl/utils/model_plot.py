"""``plot_model``: a picture of a model's layer graph, as PNG or SVG.

Two ways to draw it, the same boxes either way (name and class; input and output shapes;
optionally the dtype):

* **graphviz**, when its ``dot`` program is installed: the graph is handed over as DOT text
  and ``dot`` lays it out and writes the file;
* **pure Python** otherwise (or with ``engine="python"``): :mod:`unidl.utils.layout` lays it
  out in layers, :mod:`unidl.utils.svg` writes SVG by hand (no dependency at all) and
  :mod:`unidl.utils.raster` draws PNG with matplotlib (``pip install "unidl[plot]"``;
  without matplotlib a PNG needs graphviz, SVG needs nothing).

Example:
    >>> import os, tempfile
    >>> import unidl
    >>> from unidl import layers
    >>> from unidl.utils import plot_model
    >>> with unidl.use_backend("numpy"):
    ...     model = unidl.Sequential([layers.Dense(4, input_shape=(3,), name="hidden"),
    ...                               layers.Dense(1, name="score")])
    >>> path = os.path.join(tempfile.mkdtemp(), "model.svg")
    >>> plot_model(model, path, engine="python") == path
    True
    >>> "score (Dense)" in open(path).read()
    True
"""

from __future__ import annotations

import textwrap
import warnings

from unidl.utils._common import PlotError, target, write_file
from unidl.utils.layout import RANKDIRS, layered_layout
from unidl.utils.model_graph import model_graph
from unidl.utils.scene import Line, Polygon, Rect, Scene, Text, arrowhead, text_width

__all__ = ["plot_model", "node_labels", "graph_scene", "ENGINES"]

ENGINES = ("auto", "graphviz", "python")

FONT = 12.0  # px, the box text
LINE = 16.0  # px between lines
PAD_X, PAD_Y = 10.0, 6.0
WRAP = 56  # characters per line at most (a merge of many inputs wraps its shapes)
MARGIN = 16.0
STYLES = {  # kind -> (fill, stroke, double border)
    "input": ("#e8f5e9", "#2e7d32", False),
    "layer": ("#e3f2fd", "#1565c0", False),
    "model": ("#fff3e0", "#e65100", True),
}
EDGE_COLOR = "#455a64"


def _shapes(shapes) -> str:
    return ", ".join(str(s) for s in shapes)


def node_labels(node, show_shapes=True, show_dtype=False, show_layer_names=True):
    """The text lines of one node's box.

    Example:
        >>> from unidl.utils.model_graph import GraphNode
        >>> node = GraphNode("dense", "Dense", "layer", [(None, 3)], [(None, 4)], ["float32"])
        >>> node_labels(node, show_dtype=True)
        ['dense (Dense)', 'in:  (None, 3)', 'out: (None, 4)', 'dtype: float32']
    """
    lines = [f"{node.name} ({node.class_name})" if show_layer_names else node.class_name]
    if node.detail:
        lines.append(node.detail)
    if show_shapes:  # (a subclassed model's layers may have no recorded shapes)
        if node.kind == "input":
            lines.append(f"shape: {_shapes(node.output_shapes)}")
        else:
            if node.input_shapes:
                lines.append(f"in:  {_shapes(node.input_shapes)}")
            if node.output_shapes:
                lines.append(f"out: {_shapes(node.output_shapes)}")
    if show_dtype and node.dtypes:
        lines.append(f"dtype: {', '.join(dict.fromkeys(node.dtypes))}")
    wrapped = []
    for line in lines:
        wrapped += textwrap.wrap(line, WRAP, subsequent_indent="     ",
                                 break_on_hyphens=False) or [""]
    return wrapped


def _title(graph) -> tuple[str, str | None]:
    return f"{graph.name} ({graph.class_name})", graph.note


def _box_size(lines) -> tuple[float, float]:
    width = max(text_width(line, FONT) for line in lines) + 2 * PAD_X
    return round(width, 2), len(lines) * LINE + 2 * PAD_Y


def _node_items(name, kind, lines, box) -> list:
    x, y, w, h = box
    fill, stroke, double = STYLES[kind]
    items = [Rect(x, y, w, h, fill, stroke, 1.2, 5.0, double, group=name)]
    for k, line in enumerate(lines):
        items.append(Text(x + w / 2 if k == 0 else x + PAD_X, y + PAD_Y + LINE * (k + 0.5),
                          line, FONT, "middle" if k == 0 else "start", bold=k == 0,
                          color="#000000" if k == 0 else "#37474f", group=name))
    return items


def graph_scene(graph, labels, rankdir="TB") -> Scene:
    """The :class:`~unidl.utils.scene.Scene` of a model graph: a title (and note) at the
    top, the boxes laid out by :func:`~unidl.utils.layout.layered_layout`, arrows."""
    title, note = _title(graph)
    header = [(title, 13.0, False)] + [(line, 11.0, True)
                                       for line in textwrap.wrap(note or "", WRAP + 8)]
    header_h = MARGIN + sum(size * 1.4 for _, size, _ in header)
    layout = layered_layout([_box_size(lines) for lines in labels], graph.edges, rankdir)
    width = max(layout.width, max(text_width(t, s) for t, s, _ in header) + 2 * MARGIN)
    offset_x = (width - layout.width) / 2
    items, y = [], MARGIN
    for text, size, italic in header:
        items.append(Text(MARGIN, y + size * 0.7, text, size, "start", bold=not italic,
                          italic=italic, color="#263238" if not italic else "#546e7a"))
        y += size * 1.4

    def move(p):
        return (p[0] + offset_x, p[1] + header_h)

    for points in layout.edges:
        points = [move(p) for p in points]
        base, head = arrowhead(points[-2], points[-1])
        items.append(Line(points[:-1] + [base], EDGE_COLOR, 1.2, graph.dashed))
        items.append(Polygon(head, EDGE_COLOR))
    for node, lines, (x, y0, w, h) in zip(graph.nodes, labels, layout.boxes):
        bx, by = move((x, y0))
        items += _node_items(node.name, node.kind, lines, (bx, by, w, h))
    height = layout.height + header_h
    return Scene(round(width, 2), round(height, 2), items, title)


def _check_options(rankdir, engine, dpi):
    if rankdir not in RANKDIRS:
        raise PlotError(f"plot_model: rankdir must be one of {', '.join(RANKDIRS)} "
                        f"(top-bottom, left-right, bottom-top, right-left); got {rankdir!r}")
    if engine not in ENGINES:
        raise PlotError(f"plot_model: engine must be one of {', '.join(ENGINES)}; "
                        f"got {engine!r}")
    if not isinstance(dpi, (int, float)) or not 10 <= dpi <= 1200:
        raise PlotError(f"plot_model: dpi must be a number from 10 to 1200; got {dpi!r}")


def _with_graphviz(graph, labels, fmt, rankdir, dpi, dot) -> bytes:
    from unidl.utils.dot import run_dot, to_dot

    title, note = _title(graph)
    source = to_dot(graph, labels, [STYLES[n.kind] for n in graph.nodes], rankdir,
                    dpi if fmt == "png" else None, title + (f"\n{note}" if note else ""))
    return run_dot(source, fmt, dot)


def _with_python(graph, labels, fmt, rankdir, dpi) -> bytes:
    scene = graph_scene(graph, labels, rankdir)
    if fmt == "svg":
        from unidl.utils.svg import scene_to_svg

        return scene_to_svg(scene).encode("utf-8")
    from unidl.utils.raster import scene_to_image

    return scene_to_image(scene, fmt, dpi)


def plot_model(model, path, show_shapes=True, show_dtype=False, show_layer_names=True,
               rankdir="TB", dpi=96, *, engine="auto") -> str:
    """Draw ``model``'s layer graph to ``path`` (``.png`` or ``.svg``); return ``path``.

    A ``Sequential`` model is drawn as a chain from its input, a functional model as its
    graph (several inputs and outputs, merges), a nested model as one double-bordered box,
    a subclassed model as its tracked layers in the order they were assigned (dashed, with a
    note: ``call()`` decides the real connections). Each box shows the layer's name and
    class (``show_layer_names``), its input and output shapes (``show_shapes``) and output
    dtype (``show_dtype``). ``rankdir``: ``"TB"`` (top to bottom), ``"LR"``, ``"BT"`` or
    ``"RL"``; ``dpi``: the PNG's resolution (96: one pixel per CSS pixel).

    ``engine``: ``"graphviz"`` (its ``dot`` program must be on ``PATH``), ``"python"`` (the
    pure-Python layered layout; PNG through matplotlib) or ``"auto"``: graphviz when
    installed, else Python. The file is written atomically. A :class:`PlotError` for an
    unknown extension or option, or an unbuilt model (call it on a batch first).
    """
    from unidl.utils.dot import find_dot

    path, fmt = target(path, "plot_model")
    _check_options(rankdir, engine, dpi)
    graph = model_graph(model)
    labels = [node_labels(n, show_shapes, show_dtype, show_layer_names) for n in graph.nodes]
    dot = find_dot() if engine != "python" else None
    if engine == "graphviz" and dot is None:
        raise PlotError("plot_model(engine='graphviz'): graphviz's dot program is not on "
                        "PATH; install graphviz (e.g. apt-get install graphviz) or use "
                        "engine='python' (or 'auto')")
    if dot is not None:
        try:
            return write_file(path, _with_graphviz(graph, labels, fmt, rankdir, dpi, dot),
                              "plot_model")
        except PlotError as exc:
            if engine == "graphviz":
                raise
            warnings.warn(f"{exc}; drawing the graph in Python instead", RuntimeWarning,
                          stacklevel=2)
    return write_file(path, _with_python(graph, labels, fmt, rankdir, dpi), "plot_model")
