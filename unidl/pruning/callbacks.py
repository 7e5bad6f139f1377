"""``UpdatePruningStep``: the callback that advances the pruning step and updates the masks
during ``fit`` (TF-MOT's name and role).

Before each training batch (each group of ``steps_per_execution`` batches) it asks every
:class:`~unidl.pruning.PruneLowMagnitude` wrapper of the model to recompute its masks when
the wrapper's schedule prunes at that step; after the batch it advances the step. The step
count is kept in each wrapper's ``pruning_step`` weight, so it is saved with the model and a
later ``fit`` (or a loaded model) continues the schedule where it stopped.

Example:
    >>> import numpy as np
    >>> import unidl
    >>> from unidl import layers, pruning
    >>> with unidl.use_backend("numpy"):
    ...     unidl.random.set_seed(0)
    ...     base = unidl.Sequential([layers.Dense(8, input_shape=(4,)), layers.Dense(1)])
    ...     model = pruning.prune_low_magnitude(base, pruning.ConstantSparsity(0.75, 0))
    ...     model.compile("sgd", "mse")
    ...     x, y = np.ones((8, 4), "float32"), np.ones((8, 1), "float32")
    ...     _ = model.fit(x, y, epochs=2, verbose=0, callbacks=[pruning.UpdatePruningStep()])
    ...     pruning.sparsity_report(model)["total"]["prunable_sparsity"]
    0.75
"""

from __future__ import annotations

from unidl.callbacks.base import Callback

__all__ = ["UpdatePruningStep"]


def pruning_wrappers(model) -> list:
    """Every :class:`PruneLowMagnitude` in ``model`` (nested models included)."""
    from unidl.pruning.wrapper import PruneLowMagnitude

    out, stack, seen = [], [model], set()
    while stack:
        layer = stack.pop(0)
        if id(layer) in seen:
            continue
        seen.add(id(layer))
        if isinstance(layer, PruneLowMagnitude):
            out.append(layer)
            continue
        stack.extend(getattr(layer, "layers", None) or layer._tracked_layers)
    return out


class UpdatePruningStep(Callback):
    """Update the pruning masks of the model's :class:`PruneLowMagnitude` layers during
    ``fit`` (required: fitting a pruned model without it raises an error naming it)."""

    def __init__(self):
        super().__init__()
        self.step = None  # the next training step (read from the wrappers at the first batch)
        self._wrappers = []
        self._first = 0

    def on_train_begin(self, logs=None):
        self._wrappers = pruning_wrappers(self.model)
        self.step = None
        for w in self._wrappers:
            w._step_ready = True

    def on_train_batch_begin(self, batch, logs=None):
        self._first = batch
        if self.step is None:  # (the model is built by now: fit builds it before batch 0)
            done = [int(w.pruning_step.numpy()) for w in self._wrappers if w.built]
            self.step = max(done, default=-1) + 1
        group = max(1, int(getattr(self.model, "steps_per_execution", 1) or 1))
        for w in self._wrappers:
            w.update_masks(self.step, group)

    def on_train_batch_end(self, batch, logs=None):
        if self.step is None:
            return
        self.step += max(1, batch - self._first + 1)
        for w in self._wrappers:
            w.pruning_step.assign(self.step - 1)
