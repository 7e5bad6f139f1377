"""A picture as a few primitives (rounded boxes, text, lines, arrowheads), in pixels at
96 dpi from the top-left corner, so that the hand-written SVG (:mod:`unidl.utils.svg`) and
the matplotlib PNG (:mod:`unidl.utils.raster`) draw exactly the same thing.

Text is monospaced: a character is :data:`CHAR_WIDTH` of the font size wide (DejaVu Sans
Mono, matplotlib's bundled monospace font, and most others), so boxes can be sized without
measuring fonts.

Example:
    >>> from unidl.utils.scene import arrowhead, text_width
    >>> text_width("dense (Dense)", 12)
    93.912
    >>> base, triangle = arrowhead((0, 0), (0, 20))
    >>> base, triangle[0]
    ((0.0, 12.0), (0, 20))
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

__all__ = ["Rect", "Text", "Line", "Polygon", "Scene", "CHAR_WIDTH", "FONT_FAMILY",
           "text_width", "arrowhead"]

CHAR_WIDTH = 0.602  # of the font size (DejaVu Sans Mono's advance)
FONT_FAMILY = "DejaVu Sans Mono"  # with generic fallbacks in SVG


@dataclass
class Rect:
    """A box with corners rounded by ``radius``; ``double``: a second border inside."""

    x: float
    y: float
    width: float
    height: float
    fill: str = "#ffffff"
    stroke: str = "#000000"
    stroke_width: float = 1.0
    radius: float = 4.0
    double: bool = False
    group: str | None = None  # the node's name, for SVG ``<g>`` grouping


@dataclass
class Text:
    """One line of text; ``(x, y)``: its anchor (``"start"``, ``"middle"``) and vertical
    centre."""

    x: float
    y: float
    text: str
    size: float = 12.0
    anchor: str = "middle"
    bold: bool = False
    italic: bool = False
    color: str = "#000000"
    group: str | None = None


@dataclass
class Line:
    """A polyline."""

    points: list
    stroke: str = "#000000"
    width: float = 1.0
    dashed: bool = False


@dataclass
class Polygon:
    """A filled polygon (an arrowhead)."""

    points: list
    fill: str = "#000000"


@dataclass
class Scene:
    """Everything to draw, in order, on a ``width`` x ``height`` white canvas."""

    width: float
    height: float
    items: list = field(default_factory=list)
    title: str = ""


def text_width(text: str, size: float) -> float:
    """The width of ``text`` in a monospaced font of ``size`` pixels."""
    return round(len(text) * size * CHAR_WIDTH, 3)


def arrowhead(before, tip, length: float = 8.0, half_width: float = 4.0):
    """``(base, triangle)`` for an arrow arriving at ``tip`` from ``before``: the point
    where the line should stop, and the three corners of the head."""
    dx, dy = tip[0] - before[0], tip[1] - before[1]
    norm = math.hypot(dx, dy) or 1.0
    ux, uy = dx / norm, dy / norm
    length = min(length, norm)
    base = (round(tip[0] - ux * length, 3), round(tip[1] - uy * length, 3))
    left = (base[0] - uy * half_width, base[1] + ux * half_width)
    right = (base[0] + uy * half_width, base[1] - ux * half_width)
    return base, [tip, left, right]
