"""Magnitude pruning (TF-MOT's API): zero the smallest weights during training and keep them
zero, on every backend.

* :func:`prune_low_magnitude` wraps a layer (or every prunable layer of a Sequential or
  functional model) in :class:`PruneLowMagnitude`, following a schedule:
  :class:`ConstantSparsity` or :class:`PolynomialDecay`; ``structure="channel"`` prunes
  whole output channels.
* ``fit(..., callbacks=[UpdatePruningStep()])`` updates the masks as the schedule says; the
  optimizer applies them after every step (as a weight constraint), also inside compiled
  train steps, so pruned weights stay exactly zero.
* :func:`strip_pruning` returns the plain model to save, export or quantize;
  :func:`sparsity_report` counts the zeros per layer. Pruned models also save and load
  with their masks (``model.save("m.unidl")``).

Example:
    >>> import numpy as np
    >>> import unidl
    >>> from unidl import layers, pruning
    >>> with unidl.use_backend("numpy"):
    ...     unidl.random.set_seed(0)
    ...     base = unidl.Sequential([layers.Dense(16, "relu", input_shape=(8,)),
    ...                              layers.Dense(2)])
    ...     model = pruning.prune_low_magnitude(base, pruning.ConstantSparsity(0.8, 0))
    ...     model.compile("adam", "mse")
    ...     x, y = np.ones((32, 8), "float32"), np.zeros((32, 2), "float32")
    ...     _ = model.fit(x, y, verbose=0, callbacks=[pruning.UpdatePruningStep()])
    ...     plain = pruning.strip_pruning(model)
    ...     round(pruning.sparsity_report(plain)["total"]["prunable_sparsity"], 2)
    0.8
"""

from unidl.pruning.api import prune_low_magnitude, strip_pruning
from unidl.pruning.callbacks import UpdatePruningStep, pruning_wrappers
from unidl.pruning.report import SparsityReport, sparsity_report
from unidl.pruning.schedules import ConstantSparsity, PolynomialDecay, PruningSchedule
from unidl.pruning.wrapper import STRUCTURES, PruneLowMagnitude, magnitude_mask, prunable_weights

__all__ = ["prune_low_magnitude", "strip_pruning", "sparsity_report", "SparsityReport",
           "UpdatePruningStep", "PruneLowMagnitude", "ConstantSparsity", "PolynomialDecay",
           "PruningSchedule", "STRUCTURES", "magnitude_mask", "prunable_weights",
           "pruning_wrappers"]
