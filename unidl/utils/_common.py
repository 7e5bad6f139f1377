"""What the picture functions share: their errors, the formats they write, matplotlib
imported lazily (never a GUI backend) and atomic writes.

Example:
    >>> from unidl.utils._common import image_format
    >>> image_format("curves.PNG", "plot_history")
    'png'
"""

from __future__ import annotations

import io
import os

from unidl.errors import UnidlError

__all__ = ["PlotError", "MissingDependencyError", "FORMATS", "INSTALL_HINT", "image_format",
           "target", "load_matplotlib", "matplotlib_available", "write_file", "save_figure"]

#: the image formats every picture function writes, chosen by the path's extension
FORMATS = ("png", "svg")
INSTALL_HINT = 'pip install "unidl[plot]"'


class PlotError(UnidlError, ValueError):
    """A picture cannot be drawn from what was given (an unknown file extension, an unbuilt
    model, a metric the history does not have...); the message says what to change."""


class MissingDependencyError(UnidlError, ImportError):
    """An optional package a picture needs (matplotlib) is not installed; the message says
    how to install it."""


def image_format(path, what: str) -> str:
    """The format (``"png"`` or ``"svg"``) named by ``path``'s extension; a
    :class:`PlotError` naming the supported extensions otherwise."""
    ext = os.path.splitext(os.fspath(path))[1].lower().lstrip(".")
    if ext not in FORMATS:
        shown = f"extension '.{ext}'" if ext else "no extension"
        raise PlotError(f"{what}({os.fspath(path)!r}): {shown}; the picture is written as "
                        f"{' or '.join('.' + f for f in FORMATS)}, chosen by the extension")
    return ext


def target(path, what: str) -> tuple[str, str]:
    """``(path, format)`` for a picture about to be written: the format from the extension
    (:func:`image_format`) and the directory checked to exist, before anything is drawn."""
    from unidl.saving.files import check_directory

    fmt = image_format(path, what)
    path = os.fspath(path)
    check_directory(path, what)
    return path, fmt


def load_matplotlib(what: str):
    """``(Figure, FigureCanvasAgg)`` from matplotlib, imported now (``import unidl`` never
    imports it). Figures are drawn on the Agg canvas directly: no pyplot, no GUI, and the
    user's matplotlib backend is left alone. A :class:`MissingDependencyError` with the
    install command when matplotlib is absent."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise MissingDependencyError(f"{what} needs matplotlib, which is not installed: "
                                     f"{INSTALL_HINT}") from exc
    return Figure, FigureCanvasAgg


def matplotlib_available() -> bool:
    """Whether matplotlib can be imported (it is imported to find out)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def write_file(path, data: bytes, what: str) -> str:
    """Write ``data`` to ``path`` atomically (a temporary file in the same directory, then a
    rename: a reader never sees half a picture); return the path as a string."""
    from unidl.saving.files import atomic_write, check_directory

    path = os.fspath(path)
    check_directory(path, what)
    atomic_write(path, data)
    return path


def save_figure(fig, path, fmt: str, what: str, dpi=None) -> str:
    """Render a matplotlib ``fig`` to ``fmt`` in memory, then :func:`write_file` it. SVG
    keeps its text as text (searchable, smaller) and carries no date (reproducible)."""
    import matplotlib

    buffer = io.BytesIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "unidl"}):
        fig.savefig(buffer, format=fmt, dpi=dpi, facecolor="white",
                    metadata={"Date": None} if fmt == "svg" else None)
    return write_file(path, buffer.getvalue(), what)
