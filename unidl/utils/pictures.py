"""The examples' pictures: where they go and how they are skipped without matplotlib.

An example that trains saves ``<name>_history.png`` (and maybe ``<name>_model.png``) into
the directory given by ``--out DIR``, else ``$UNIDL_EXAMPLES_OUT``, else the current one.

Example:
    >>> import os, tempfile
    >>> from unidl.utils.pictures import output_directory
    >>> d = tempfile.mkdtemp()
    >>> output_directory(os.path.join(d, "pictures")) == os.path.join(d, "pictures")
    True
"""

from __future__ import annotations

import os

from unidl.utils._common import INSTALL_HINT, matplotlib_available

__all__ = ["OUT_ENV", "output_directory", "save_training_pictures"]

OUT_ENV = "UNIDL_EXAMPLES_OUT"


def output_directory(out=None) -> str:
    """``out``, else ``$UNIDL_EXAMPLES_OUT``, else the current directory; created if
    missing."""
    directory = os.fspath(out) if out else os.environ.get(OUT_ENV) or os.getcwd()
    os.makedirs(directory, exist_ok=True)
    return directory


def save_training_pictures(name: str, history, model=None, out=None, print_fn=print):
    """Save ``<name>_history.png`` (:func:`~unidl.utils.plot_history`) and, when ``model``
    is given, ``<name>_model.png`` (:func:`~unidl.utils.plot_model`) in
    :func:`output_directory`; print one line naming them and return their paths. Without
    matplotlib, print one line saying they were skipped and return ``[]``."""
    if not matplotlib_available():
        print_fn(f"{name}: pictures skipped (matplotlib is not installed: {INSTALL_HINT})")
        return []
    from unidl.utils.history import plot_history
    from unidl.utils.model_plot import plot_model

    directory = output_directory(out)
    paths = [plot_history(history, os.path.join(directory, f"{name}_history.png"))]
    if model is not None:
        paths.append(plot_model(model, os.path.join(directory, f"{name}_model.png")))
    print_fn(f"{name}: pictures written: {', '.join(paths)}")
    return paths
