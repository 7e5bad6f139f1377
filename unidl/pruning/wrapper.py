"""``PruneLowMagnitude``: the layer wrapper that holds a layer's pruning masks.

The wrapper owns one non-trainable mask per prunable weight of the layer it wraps (a
``kernel``, ``embeddings``, ``depthwise_kernel``, ``pointwise_kernel`` or
``recurrent_kernel``, in the layer or its nested layers, or what the layer's
``get_prunable_weights()`` returns) and a ``pruning_step`` counter. It puts a constraint on
each of those weights, ``w <- w * mask``, which the optimizer applies after every update (see
:mod:`unidl.optimizers.base`), so pruned weights stay exactly zero on every backend and inside
compiled train steps. The masks themselves are recomputed on the host by
:meth:`PruneLowMagnitude.update_masks`, which :class:`~unidl.pruning.UpdatePruningStep` calls
before each training batch.

Example:
    >>> import numpy as np
    >>> import unidl
    >>> from unidl import layers
    >>> from unidl.pruning import ConstantSparsity, PruneLowMagnitude
    >>> with unidl.use_backend("numpy"):
    ...     unidl.random.set_seed(0)
    ...     pruned = PruneLowMagnitude(layers.Dense(4), ConstantSparsity(0.5))
    ...     _ = pruned(np.ones((1, 8), "float32"))
    ...     pruned.prune_to(0.5)
    ...     float((pruned.layer.kernel.numpy() == 0).mean())
    0.5
"""

from __future__ import annotations

import numpy as np

from unidl.layers.base import Layer, LayerError, _dtype_shared_with

# (PruneLowMagnitude is the one class saved files may name: unidl.saving.registry)
__all__ = ["PruneLowMagnitude", "prunable_weights", "magnitude_mask", "STRUCTURES"]

#: ``"unstructured"``: the smallest weights one by one; ``"channel"``: whole output channels
#: (the slices of a weight along its output-channel axis) with the smallest L2 norm
STRUCTURES = ("unstructured", "channel")
_PRUNABLE_ATTRS = ("kernel", "embeddings", "depthwise_kernel", "pointwise_kernel",
                   "recurrent_kernel")
_CALLBACK_ERROR = ("training a pruned model needs the callback "
                   "unidl.pruning.UpdatePruningStep(): pass "
                   "callbacks=[unidl.pruning.UpdatePruningStep()] to fit (in a custom training "
                   "loop, call its set_model(model) and on_train_begin() once, then "
                   "on_train_batch_begin(i) and on_train_batch_end(i) around each step)")


def prunable_weights(layer) -> list:
    """``[(owner layer, attribute, Variable), ...]``: the weights pruning masks, in ``layer``
    and its nested layers (``layer.get_prunable_weights()`` when the layer defines it)."""
    from unidl.variables import Variable

    get = getattr(layer, "get_prunable_weights", None)
    if callable(get):
        return [(layer, getattr(v, "name", "weight"), v) for v in get()]
    out, seen = [], set()

    def visit(owner):
        for attr in _PRUNABLE_ATTRS:
            v = getattr(owner, attr, None)
            if isinstance(v, Variable) and id(v) not in seen and v.dtype.startswith(
                    ("float", "bfloat")):
                seen.add(id(v))
                out.append((owner, attr, v))
        for sub in owner._tracked_layers:
            visit(sub)

    visit(layer)
    return out


def _channel_axes(owner, attr, ndim) -> tuple:
    """The axes of weight ``attr`` of ``owner`` that index its output channels."""
    from unidl import layers

    transposed = tuple(getattr(layers, n) for n in ("Conv1DTranspose", "Conv2DTranspose",
                                                    "Conv3DTranspose") if hasattr(layers, n))
    if attr == "depthwise_kernel" or type(owner).__name__.startswith("DepthwiseConv"):
        return (ndim - 2, ndim - 1)  # (channels, depth multiplier): one filter per pair
    if attr == "kernel" and isinstance(owner, transposed):
        return (ndim - 2,)  # (..., filters, input channels)
    return (ndim - 1,)


def magnitude_mask(values, sparsity: float, structure="unstructured", channel_axes=None):
    """A 0/1 mask (NumPy, ``values``' shape) zeroing ``round(sparsity * n)`` of the ``n``
    weights (``"unstructured"``) or output channels (``"channel"``) of smallest magnitude
    (absolute value, or L2 norm of the channel); ties go to the lower index, so the mask is
    the same on every backend.

    Example:
        >>> import numpy as np
        >>> from unidl.pruning.wrapper import magnitude_mask
        >>> magnitude_mask(np.array([[0.1, -3.0], [2.0, 0.5]]), 0.5).tolist()
        [[0.0, 1.0], [1.0, 0.0]]
        >>> magnitude_mask(np.array([[0.1, -3.0], [2.0, 0.5]]), 0.5, "channel").tolist()
        [[0.0, 1.0], [0.0, 1.0]]
    """
    values = np.asarray(values, dtype=np.float64)
    if structure == "channel" and values.ndim:
        axes = tuple(channel_axes) if channel_axes is not None else (values.ndim - 1,)
        other = tuple(a for a in range(values.ndim) if a not in axes)
        score = np.sqrt(np.sum(np.square(values), axis=other, keepdims=True))
    else:
        score = np.abs(values)
    flat = score.reshape(-1)
    k = int(round(float(sparsity) * flat.size))
    keep = np.ones(flat.size, dtype=np.float32)
    keep[np.argsort(flat, kind="stable")[:k]] = 0.0
    return np.broadcast_to(keep.reshape(score.shape), values.shape).astype(np.float32)


class _MaskConstraint:
    """``w <- previous(w) * mask``: what the optimizer applies to a pruned weight after each
    update (never saved: the wrapper puts it back when it is built)."""

    def __init__(self, mask, previous=None):
        self.mask, self.previous = mask, previous

    def __call__(self, w):
        from unidl import ops

        if self.previous is not None:
            w = self.previous(w)
        return ops.multiply(w, self.mask)


def _check_structure(structure, where):
    if structure not in STRUCTURES:
        raise ValueError(f"{where}: structure must be one of {', '.join(map(repr, STRUCTURES))}"
                         f", got {structure!r}")
    return structure


class PruneLowMagnitude(Layer):
    """Wrap ``layer`` so that its prunable weights (see :func:`prunable_weights`) are
    magnitude-pruned following ``pruning_schedule`` during ``fit`` (with
    :class:`~unidl.pruning.UpdatePruningStep`). Made by
    :func:`unidl.pruning.prune_low_magnitude`; saved and loaded with the model.

    Args:
        layer: the layer to prune (Dense, Conv*, Embedding, RNN layers, ...).
        pruning_schedule: a :class:`~unidl.pruning.PruningSchedule` (default
            ``ConstantSparsity(0.5)``).
        structure: ``"unstructured"`` (single weights) or ``"channel"`` (whole output
            channels, by L2 norm; the sparsity is the fraction of channels removed).
    """

    dtype = _dtype_shared_with("layer")

    def __init__(self, layer, pruning_schedule=None, structure="unstructured", **kwargs):
        from unidl.pruning.schedules import ConstantSparsity, PruningSchedule

        if not isinstance(layer, Layer):
            raise TypeError(f"PruneLowMagnitude: layer must be a unidl Layer, got "
                            f"{type(layer).__name__}")
        if isinstance(layer, PruneLowMagnitude):
            raise ValueError(f"PruneLowMagnitude: layer {layer.name!r} is already wrapped for "
                             "pruning")
        schedule = ConstantSparsity(0.5) if pruning_schedule is None else pruning_schedule
        if not isinstance(schedule, PruningSchedule):
            raise TypeError(f"PruneLowMagnitude({layer.name!r}): pruning_schedule must be a "
                            "unidl.pruning.PruningSchedule (ConstantSparsity, PolynomialDecay)"
                            f", got {type(schedule).__name__}")
        kwargs.setdefault("name", f"prune_low_magnitude_{layer.name}")
        kwargs.setdefault("dtype", layer.dtype)
        kwargs.setdefault("trainable", layer.trainable)
        super().__init__(**kwargs)
        self.layer = layer
        self.pruning_schedule = schedule
        self.structure = _check_structure(structure, f"PruneLowMagnitude({layer.name!r})")
        self._pruned = []  # (owner, attr, weight, mask)
        self._step_ready = False

    # -- building ---------------------------------------------------------------------------
    def _maybe_build(self, inputs):
        if not self.built:
            if not self.layer.built:
                self.layer._maybe_build(inputs)
                self.layer.built = True
            self.build(None)
            self.built = True

    def build(self, input_shape) -> None:
        from unidl.variables import Variable

        if not self.layer.built:
            self.layer.build(input_shape)
            self.layer.built = True
        found = prunable_weights(self.layer)
        if not found:
            raise LayerError(self, f"layer {self.layer.name!r} ({type(self.layer).__name__}) "
                                   "has no weight to prune: expected a kernel, embeddings, "
                                   "depthwise/pointwise or recurrent kernel (or a "
                                   "get_prunable_weights() method)")
        pruned = []
        for owner, attr, w in found:
            mask = self.add_weight(w.shape, initializer="ones", trainable=False, dtype=w.dtype,
                                   name=f"{owner.name}_{attr}_mask")
            w.constraint = _MaskConstraint(mask, getattr(w, "constraint", None))
            pruned.append((owner, attr, w, mask))
        object.__setattr__(self, "_pruned", pruned)  # (not tracked: the layer owns these)
        self.pruning_step = Variable(np.array(-1, np.int64), trainable=False, dtype="int64",
                                     name=f"{self.name}/pruning_step")
        self.built = True

    # -- calling ----------------------------------------------------------------------------
    def call(self, inputs, training=None, **kwargs):
        if training is True and not self._step_ready:
            raise LayerError(self, _CALLBACK_ERROR)
        from unidl.layers.base import _accepts_training

        if _accepts_training(self.layer):
            kwargs["training"] = training
        return self.layer(inputs, **kwargs)

    def compute_output_shape(self, input_shape):
        return self.layer.compute_output_shape(input_shape)

    # -- masks ------------------------------------------------------------------------------
    @property
    def masks(self) -> list:
        """The mask Variables, one per pruned weight (1 keeps a weight, 0 prunes it)."""
        return [m for *_, m in self._pruned]

    @property
    def pruned_weights(self) -> list:
        """The weights this wrapper prunes (Variables of the wrapped layer)."""
        return [w for _, _, w, _ in self._pruned]

    def prune_to(self, sparsity: float) -> None:
        """Recompute every mask for ``sparsity`` from the current weights' magnitudes (on the
        host, the same on every backend) and zero the pruned weights at once."""
        for owner, attr, w, mask in self._pruned:
            values = w.numpy()
            axes = _channel_axes(owner, attr, values.ndim)
            m = magnitude_mask(values, sparsity, self.structure, axes)
            mask.assign(m)
            w.assign((values * m).astype(values.dtype))

    def apply_masks(self) -> None:
        """``w <- w * mask`` for every pruned weight (the optimizer does it after each step)."""
        for _, _, w, mask in self._pruned:
            w.assign(w.numpy() * mask.numpy())

    def update_masks(self, first_step: int, steps: int = 1) -> bool:
        """Before training steps ``first_step .. first_step + steps - 1``: recompute the
        masks if the schedule prunes at one of them (at the sparsity of the last such
        step). Returns whether it did."""
        schedule = self.pruning_schedule
        due = [t for t in range(int(first_step), int(first_step) + max(1, int(steps)))
               if schedule.should_prune(t)]
        self._step_ready = True
        if due:
            self.prune_to(schedule.sparsity_at(due[-1]))
        return bool(due)

    def restore_constraints(self) -> None:
        """Take the mask constraints off the wrapped layer's weights (for
        :func:`~unidl.pruning.strip_pruning`)."""
        for _, _, w, mask in self._pruned:
            c = getattr(w, "constraint", None)
            if isinstance(c, _MaskConstraint) and c.mask is mask:
                w.constraint = c.previous

    # -- saving -----------------------------------------------------------------------------
    def get_config(self) -> dict:
        return {**super().get_config(), "layer": self.layer,
                "pruning_schedule": self.pruning_schedule, "structure": self.structure}

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)
