"""A :class:`~unidl.utils.scene.Scene` as SVG text, written by hand (no dependency).

Each node's box and text lines are grouped in ``<g class="node">`` with a ``<title>``
naming the layer (a tooltip in browsers), edges are ``<path class="edge">``.

Example:
    >>> from unidl.utils.scene import Rect, Scene, Text
    >>> from unidl.utils.svg import scene_to_svg
    >>> scene = Scene(100, 40, [Rect(5, 5, 90, 30, group="dense"),
    ...                         Text(50, 20, "dense & co", group="dense")])
    >>> svg = scene_to_svg(scene)
    >>> import xml.etree.ElementTree as ET
    >>> root = ET.fromstring(svg)
    >>> root.get("width"), root.find("{http://www.w3.org/2000/svg}g").get("class")
    ('100', 'node')
    >>> "dense &amp; co" in svg
    True
"""

from __future__ import annotations

from xml.sax.saxutils import escape, quoteattr

from unidl.utils.scene import FONT_FAMILY, Line, Polygon, Rect, Text

__all__ = ["scene_to_svg"]

_FONTS = f"{FONT_FAMILY}, Menlo, Consolas, 'Liberation Mono', monospace"


def _num(v: float) -> str:
    """A coordinate, without trailing zeros."""
    text = f"{v:.2f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def _points(points) -> str:
    return " ".join(f"{_num(x)},{_num(y)}" for x, y in points)


def _rect(r: Rect) -> list[str]:
    out = [f'<rect x="{_num(r.x)}" y="{_num(r.y)}" width="{_num(r.width)}" '
           f'height="{_num(r.height)}" rx="{_num(r.radius)}" fill="{r.fill}" '
           f'stroke="{r.stroke}" stroke-width="{_num(r.stroke_width)}"/>']
    if r.double:
        inset = 3.0
        out.append(f'<rect x="{_num(r.x + inset)}" y="{_num(r.y + inset)}" '
                   f'width="{_num(r.width - 2 * inset)}" height="{_num(r.height - 2 * inset)}" '
                   f'rx="{_num(max(r.radius - 1, 0))}" fill="none" stroke="{r.stroke}" '
                   f'stroke-width="{_num(r.stroke_width * 0.7)}"/>')
    return out


def _text(t: Text) -> str:
    style = ""
    if t.bold:
        style += ' font-weight="bold"'
    if t.italic:
        style += ' font-style="italic"'
    return (f'<text x="{_num(t.x)}" y="{_num(t.y)}" font-size="{_num(t.size)}" '
            f'text-anchor="{t.anchor}" dominant-baseline="central" fill="{t.color}"'
            f'{style} xml:space="preserve">{escape(t.text)}</text>')


def _line(line: Line) -> str:
    d = "M " + " L ".join(f"{_num(x)} {_num(y)}" for x, y in line.points)
    dash = ' stroke-dasharray="5 4"' if line.dashed else ""
    return (f'<path class="edge" d="{d}" fill="none" stroke="{line.stroke}" '
            f'stroke-width="{_num(line.width)}"{dash}/>')


def _polygon(p: Polygon) -> str:
    return f'<polygon class="arrowhead" points="{_points(p.points)}" fill="{p.fill}"/>'


def scene_to_svg(scene) -> str:
    """The SVG document of ``scene`` (UTF-8 text, one element per line)."""
    width, height = _num(scene.width), _num(scene.height)
    out = ['<?xml version="1.0" encoding="UTF-8"?>',
           f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family={quoteattr(_FONTS)}>']
    if scene.title:
        out.append(f"<title>{escape(scene.title)}</title>")
    out.append(f'<rect width="{width}" height="{height}" fill="#ffffff"/>')
    group = None
    for item in scene.items:
        name = getattr(item, "group", None)
        if name != group:
            if group is not None:
                out.append("</g>")
            if name is not None:
                out.append(f'<g class="node" id={quoteattr("node-" + name)}>'
                           f"<title>{escape(name)}</title>")
            group = name
        if isinstance(item, Rect):
            out += _rect(item)
        elif isinstance(item, Text):
            out.append(_text(item))
        elif isinstance(item, Line):
            out.append(_line(item))
        elif isinstance(item, Polygon):
            out.append(_polygon(item))
    if group is not None:
        out.append("</g>")
    out.append("</svg>")
    return "\n".join(out) + "\n"
