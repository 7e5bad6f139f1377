"""``prune_low_magnitude`` and ``strip_pruning``."""

from __future__ import annotations

from unidl.errors import UnidlError
from unidl.layers.base import Layer
from unidl.pruning.callbacks import pruning_wrappers
from unidl.pruning.wrapper import PruneLowMagnitude, _check_structure, prunable_weights

__all__ = ["prune_low_magnitude", "strip_pruning"]


def _is_model(obj) -> bool:
    from unidl.models.model import Model

    return isinstance(obj, Model)


def _rewritable(model) -> bool:
    """Sequential and functional models (their config lists their layers)."""
    return getattr(model, "_graph", None) is not None or hasattr(model, "_stack")


def _rewrite(model, transform, where):
    """A copy of ``model`` whose layers (nested Sequential/functional models included) are
    ``transform(layer, layer_config)``'s configs, with the weights copied by name."""
    from unidl.saving.registry import SerializationError, deserialize, serialize

    try:
        config = serialize(model)
    except SerializationError as exc:
        raise UnidlError(f"{where}: cannot copy model {model.name!r}: {exc}") from None
    config = _map_layers(model, config, transform)
    clone = deserialize(config)
    _copy_weights(model, clone, where)
    return clone


def _map_layers(model, config, transform):
    layer_configs = config["config"]["layers"]
    out = []
    for layer, cfg in zip(model.layers, layer_configs):
        if _is_model(layer) and _rewritable(layer):
            out.append(_map_layers(layer, cfg, transform))
        else:
            out.append(transform(layer, cfg))
    return {**config, "config": {**config["config"], "layers": out}}


def _copy_weights(source, target, where) -> None:
    names = [w.name for w in source.weights]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise UnidlError(f"{where}: model {source.name!r} has several weights named "
                         f"{dup[:3]}; give its layers unique names")
    values = {w.name: w for w in source.weights}
    for w in target.weights:
        if w.name in values:
            w.assign(values[w.name].numpy())


def prune_low_magnitude(to_prune, pruning_schedule=None, structure="unstructured"):
    """Magnitude pruning of a layer, a list of layers, or a Sequential/functional model.

    A layer comes back wrapped in :class:`~unidl.pruning.PruneLowMagnitude` (the same layer
    object inside). A model comes back as a new, uncompiled model of the same architecture
    and weights (the original is left as it is, unlike TF-MOT, which shares its layers)
    whose layers with prunable weights (Dense, Conv*, Embedding, RNN layers, ...) are
    wrapped; layers without any (Flatten, Dropout, BatchNormalization, ...) are kept as
    they are. Compile it and ``fit`` it with ``callbacks=[UpdatePruningStep()]``.

    Args:
        to_prune: a layer, a list of layers, or a Sequential or functional model (for a
            subclassed model, wrap the layers in its ``__init__`` instead).
        pruning_schedule: a :class:`~unidl.pruning.PruningSchedule`; default
            ``ConstantSparsity(0.5)``.
        structure: ``"unstructured"`` or ``"channel"`` (whole output channels).

    Example:
        >>> import unidl
        >>> from unidl import layers, pruning
        >>> with unidl.use_backend("numpy"):
        ...     base = unidl.Sequential([layers.Flatten(input_shape=(4, 4)),
        ...                              layers.Dense(8), layers.Dense(2)])
        ...     model = pruning.prune_low_magnitude(base, pruning.ConstantSparsity(0.8))
        ...     [type(layer).__name__ for layer in model.layers]
        ['Flatten', 'PruneLowMagnitude', 'PruneLowMagnitude']
    """
    from unidl.pruning.schedules import ConstantSparsity

    schedule = ConstantSparsity(0.5) if pruning_schedule is None else pruning_schedule
    _check_structure(structure, "prune_low_magnitude")
    if isinstance(to_prune, (list, tuple)):
        return [prune_low_magnitude(layer, schedule, structure) for layer in to_prune]
    if not isinstance(to_prune, Layer):
        raise TypeError("prune_low_magnitude: expected a unidl Layer, a list of layers or a "
                        f"Sequential/functional model, got {type(to_prune).__name__}")
    if not _is_model(to_prune):
        if to_prune.built and not prunable_weights(to_prune):
            raise ValueError(f"prune_low_magnitude: layer {to_prune.name!r} "
                             f"({type(to_prune).__name__}) has no weight to prune (a kernel,"
                             " embeddings, ...)")
        return PruneLowMagnitude(to_prune, schedule, structure)
    return _prune_model(to_prune, schedule, structure)


def _prune_model(model, schedule, structure):
    from unidl.saving.registry import registered_name, serialize

    where = "prune_low_magnitude"
    if not _rewritable(model):
        raise UnidlError(f"{where}: model {model.name!r} ({type(model).__name__}) is "
                         "subclassed; its layers cannot be swapped from outside. Wrap its "
                         "layers instead: self.dense = prune_low_magnitude(layers.Dense(...))")
    if not model.built:
        raise UnidlError(f"{where}: model {model.name!r} is not built; give its first layer "
                         "input_shape=... or call it on a batch first")
    if pruning_wrappers(model):
        raise UnidlError(f"{where}: model {model.name!r} is already pruned (it has "
                         "PruneLowMagnitude layers); strip_pruning(model) first")
    count = [0]

    def wrap(layer, cfg):
        if not prunable_weights(layer):
            return cfg
        count[0] += 1
        wrapper = {"name": f"prune_low_magnitude_{layer.name}", "dtype": layer.dtype,
                   "trainable": layer.trainable, "layer": cfg,
                   "pruning_schedule": serialize(schedule), "structure": structure}
        return {"class_name": "PruneLowMagnitude",
                "registered_name": registered_name(PruneLowMagnitude), "config": wrapper}

    pruned = _rewrite(model, wrap, where)
    if not count[0]:
        raise UnidlError(f"{where}: model {model.name!r} has no layer with a weight to prune "
                         "(a Dense, Conv or Embedding kernel, ...)")
    return pruned


def strip_pruning(model):
    """The model without its pruning wrappers: a plain model (a new one; the wrapped
    layers' weights, pruned, copied into it) to save, export or quantize. A
    :class:`PruneLowMagnitude` layer gives its wrapped layer back; a model without wrappers
    comes back as it is.

    Example:
        >>> import unidl
        >>> from unidl import layers, pruning
        >>> with unidl.use_backend("numpy"):
        ...     base = unidl.Sequential([layers.Dense(8, input_shape=(4,)), layers.Dense(2)])
        ...     plain = pruning.strip_pruning(pruning.prune_low_magnitude(base))
        ...     [type(layer).__name__ for layer in plain.layers], len(plain.weights)
        (['Dense', 'Dense'], 4)
    """
    if isinstance(model, PruneLowMagnitude):
        model.apply_masks()
        model.restore_constraints()
        return model.layer
    if not isinstance(model, Layer):
        raise TypeError(f"strip_pruning: expected a unidl model or layer, got "
                        f"{type(model).__name__}")
    wrappers = pruning_wrappers(model)
    if not wrappers:
        return model
    if not _rewritable(model):
        raise UnidlError(f"strip_pruning: model {model.name!r} ({type(model).__name__}) is "
                         "subclassed; build it without prune_low_magnitude and copy the "
                         "weights (model.get_weights() lists the masks too)")
    for w in wrappers:
        w.apply_masks()

    def unwrap(layer, cfg):
        return cfg["config"]["layer"] if isinstance(layer, PruneLowMagnitude) else cfg

    return _rewrite(model, unwrap, "strip_pruning")
