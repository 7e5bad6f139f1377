"""A :class:`~unidl.utils.scene.Scene` drawn with matplotlib (the Agg canvas, no pyplot):
the PNG of the pure-Python model graph.

The scene's units are pixels at 96 dpi; ``dpi`` scales the image (``dpi=192``: twice the
pixels, the same picture).

Example (needs matplotlib):
    >>> from unidl.utils.png import png_info
    >>> from unidl.utils.raster import scene_to_image
    >>> from unidl.utils.scene import Rect, Scene, Text
    >>> scene = Scene(120, 40, [Rect(4, 4, 112, 32), Text(60, 20, "hello")])
    >>> info = png_info(scene_to_image(scene, "png", dpi=96))  # doctest: +SKIP
    >>> info.width, info.height  # doctest: +SKIP
    (120, 40)
"""

from __future__ import annotations

import io

from unidl.utils._common import load_matplotlib
from unidl.utils.scene import FONT_FAMILY, Line, Polygon, Rect, Text

__all__ = ["scene_to_image"]

_PT = 72.0 / 96.0  # points per scene pixel


def _draw_rect(ax, r: Rect, patches) -> None:
    pad = min(r.radius, r.width / 2, r.height / 2)
    ax.add_patch(patches.FancyBboxPatch(
        (r.x + pad, r.y + pad), r.width - 2 * pad, r.height - 2 * pad,
        boxstyle=f"round,pad={pad}", facecolor=r.fill, edgecolor=r.stroke,
        linewidth=r.stroke_width * _PT))
    if r.double:
        inset = 3.0
        pad2 = max(pad - 1, 0)
        ax.add_patch(patches.FancyBboxPatch(
            (r.x + inset + pad2, r.y + inset + pad2), r.width - 2 * (inset + pad2),
            r.height - 2 * (inset + pad2), boxstyle=f"round,pad={pad2}", facecolor="none",
            edgecolor=r.stroke, linewidth=r.stroke_width * 0.7 * _PT))


def _draw(ax, item, patches) -> None:
    if isinstance(item, Rect):
        _draw_rect(ax, item, patches)
    elif isinstance(item, Text):
        ax.text(item.x, item.y, item.text, fontsize=item.size * _PT, family="monospace",
                fontweight="bold" if item.bold else "normal",
                fontstyle="italic" if item.italic else "normal", color=item.color,
                ha="left" if item.anchor == "start" else "center", va="center_baseline")
    elif isinstance(item, Line):
        xs, ys = zip(*item.points)
        ax.plot(xs, ys, color=item.stroke, linewidth=item.width * _PT,
                linestyle=(0, (5, 4)) if item.dashed else "-", solid_capstyle="butt")
    elif isinstance(item, Polygon):
        ax.add_patch(patches.Polygon(item.points, closed=True, facecolor=item.fill,
                                     edgecolor="none"))


def scene_to_image(scene, fmt: str = "png", dpi: float = 96) -> bytes:
    """The bytes of ``scene`` as a ``fmt`` image (``"png"``; any format matplotlib writes)
    of ``scene.width * dpi / 96`` by ``scene.height * dpi / 96`` pixels."""
    Figure, FigureCanvasAgg = load_matplotlib("plot_model (PNG)")
    import matplotlib
    from matplotlib import patches

    # unhinted text advances exactly as the scene measured it, at every dpi
    with matplotlib.rc_context({"font.monospace": [FONT_FAMILY, "monospace"],
                                "svg.fonttype": "none", "text.hinting": "no_hinting"}):
        fig = Figure(figsize=(scene.width / 96.0, scene.height / 96.0), dpi=dpi,
                     facecolor="white")
        FigureCanvasAgg(fig)
        ax = fig.add_axes((0, 0, 1, 1))
        ax.set_xlim(0, scene.width)
        ax.set_ylim(scene.height, 0)
        ax.set_axis_off()
        for item in scene.items:
            _draw(ax, item, patches)
        buffer = io.BytesIO()
        fig.savefig(buffer, format=fmt, dpi=dpi, facecolor="white",
                    metadata={"Software": "unidl"} if fmt == "png" else None)
    return buffer.getvalue()
