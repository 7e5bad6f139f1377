"""Pictures: training curves, model graphs and confusion matrices, as PNG or SVG.

* :func:`plot_history`: loss and metrics per epoch from ``model.fit``'s ``History``,
  training and validation on the same axes, one subplot per quantity;
* :func:`plot_model`: the layer graph with shapes, through graphviz's ``dot`` when it is
  installed, else a pure-Python layered layout (SVG written by hand, PNG through matplotlib);
* :func:`plot_confusion_matrix`: a heatmap with the counts (and normalized values).

Curves, confusion matrices and PNG model graphs without graphviz need matplotlib
(``pip install "unidl[plot]"``), imported only when a picture is drawn (``import unidl``
never imports it) and used on its Agg canvas, never a GUI. Files are written atomically.
See ``docs/evaluation.md`` ("Pictures").

Example:
    >>> import os, tempfile
    >>> import unidl
    >>> from unidl import layers
    >>> with unidl.use_backend("numpy"):
    ...     model = unidl.Sequential([layers.Dense(2, input_shape=(3,))])
    >>> path = unidl.utils.plot_model(model, os.path.join(tempfile.mkdtemp(), "m.svg"))
    >>> open(path).read().startswith("<?xml")
    True
"""

from unidl.utils._common import MissingDependencyError, PlotError
from unidl.utils.confusion import confusion_matrix, plot_confusion_matrix
from unidl.utils.history import plot_history
from unidl.utils.model_plot import plot_model
from unidl.utils.pictures import save_training_pictures

__all__ = ["plot_history", "plot_model", "plot_confusion_matrix", "confusion_matrix",
           "save_training_pictures", "PlotError", "MissingDependencyError"]
