"""A ``.keras`` file's ``compile_config`` (optimizer, loss, metrics) and the optimizer's
variables, between Keras 3 and unidl.

What does not map loads (or saves) the model uncompiled, with a warning that says why:
weight decay in an optimizer whose unidl version adds it to the gradient (as
``torch.optim``; Keras decouples it: Keras' ``Adam(weight_decay=...)`` is unidl's ``AdamW``),
losses or metrics given per output as dicts, EMA or gradient accumulation, a loss or metric
unidl does not have. Keras' ``Nadam`` is unidl's ``Nadam(momentum_decay=1.0)``. The
optimizer's variables (step count, learning rate, moments...) move where both sides keep
the same state (:func:`~unidl.saving.keras.weights_h5.optimizer_permutation`).
"""

from __future__ import annotations

import warnings

import numpy as np

from unidl.saving.keras.configs import KerasConfigError, object_from_keras, object_to_keras
from unidl.saving.keras.weights_h5 import keras_trainable_order, optimizer_permutation

__all__ = ["compile_from_keras", "compile_to_keras", "restore_optimizer", "optimizer_arrays"]

#: Keras optimizer arguments unidl ignores at these values (anything else: not restored)
_OPTIMIZER_NEUTRAL = {"use_ema": False, "ema_momentum": None, "ema_overwrite_frequency": None,
                      "loss_scale_factor": None, "gradient_accumulation_steps": None}
#: Keras' Nadam momentum schedule 0.96 ** t is torch's (and unidl's) momentum_decay=1.0
_KERAS_NADAM_DECAY = 1.0


# -- reading -------------------------------------------------------------------------------------
def _optimizer_from_keras(spec, where, custom_objects):
    from unidl import optimizers

    if isinstance(spec, str):
        return optimizers.get(spec)
    if not isinstance(spec, dict) or "class_name" not in spec:
        raise KerasConfigError(f"{where}: unreadable optimizer {spec!r}")
    spec = dict(spec)
    config = dict(spec.get("config") or {})
    for key, neutral in _OPTIMIZER_NEUTRAL.items():
        value = config.pop(key, neutral)
        if key != "ema_momentum" and value != neutral:
            raise KerasConfigError(f"{where}: optimizer argument {key}={value!r} has no unidl "
                                   "equivalent")
    name = spec["class_name"]
    if name == "Adam" and config.get("weight_decay"):
        name = "AdamW"  # Keras' Adam with weight decay is AdamW
    cls = getattr(optimizers, name, None)
    if config.get("weight_decay") and getattr(cls, "_coupled_decay", False):
        raise KerasConfigError(f"{where}: {name}(weight_decay={config['weight_decay']}) decays "
                               f"the weights as Keras does (decoupled); unidl's {name} adds the "
                               "decay to the gradient instead (as torch.optim)")
    if name == "Nadam":
        config["momentum_decay"] = _KERAS_NADAM_DECAY
    spec.update(class_name=name, module="keras.optimizers", config=config, registered_name=None)
    return object_from_keras(spec, where, custom_objects, ("optimizers",))


def _loss_from_keras(value, where, custom_objects, kinds):
    if isinstance(value, str) or value is None:
        return value
    if isinstance(value, list):
        return [_loss_from_keras(v, where, custom_objects, kinds) for v in value]
    if isinstance(value, dict) and "class_name" not in value:
        raise KerasConfigError(f"{where}: {kinds[0]} given per output as a dict")
    return object_from_keras(value, where, custom_objects, kinds)


def compile_from_keras(model, config: dict, where: str, custom_objects=None) -> bool:
    """Compile ``model`` as a Keras ``compile_config`` says; False (and a warning saying
    why) when unidl has no equivalent: the model then stays uncompiled."""
    try:
        if config.get("weighted_metrics"):
            raise KerasConfigError(f"{where}: weighted_metrics have no unidl equivalent")
        optimizer = _optimizer_from_keras(config.get("optimizer", "rmsprop"), where,
                                          custom_objects)
        loss = _loss_from_keras(config.get("loss"), where, custom_objects, ("losses",))
        metrics = _loss_from_keras(config.get("metrics"), where, custom_objects, ("metrics",))
        jit = config.get("jit_compile")
        model.compile(optimizer=optimizer, loss=loss, metrics=metrics,
                      loss_weights=config.get("loss_weights"),
                      run_eagerly=bool(config.get("run_eagerly", False)),
                      jit_compile=jit if isinstance(jit, bool) else False,
                      steps_per_execution=int(config.get("steps_per_execution") or 1))
    except (KerasConfigError, ValueError, TypeError) as exc:
        warnings.warn(f"{where}: the model is loaded uncompiled: its compile configuration "
                      f"does not map to unidl ({exc}); call model.compile(...) yourself",
                      stacklevel=4)
        return False
    return True


def restore_optimizer(model, layouts, arrays: dict, where: str) -> None:
    """Assign the file's ``optimizer/vars`` to the compiled model's optimizer, when its
    layout is unidl's (else a warning: the optimizer starts fresh)."""
    keys = sorted((k for k in arrays if k.startswith("optimizer/vars/")),
                  key=lambda k: int(k.rsplit("/", 1)[1]))
    if not keys:
        return
    opt = model.optimizer
    opt.build(model.trainable_weights)
    order = optimizer_permutation(opt, keras_trainable_order(model, layouts))
    why = None
    if order is None:
        why = f"unidl's {type(opt).__name__} keeps its state differently from Keras'"
    elif len(order) != len(keys):
        why = f"the file holds {len(keys)} optimizer arrays, unidl's optimizer {len(order)}"
    else:
        bad = [(v.name, tuple(v.shape), tuple(arrays[k].shape)) for v, k in zip(order, keys)
               if tuple(v.shape) != tuple(arrays[k].shape)]
        why = f"shapes differ: {bad[:3]}" if bad else None
    if why is not None:
        warnings.warn(f"{where}: the optimizer's state is not restored ({why}); training "
                      "continues with a fresh optimizer state", stacklevel=4)
        return
    for var, key in zip(order, keys):
        var.assign(np.asarray(arrays[key]).astype(np.dtype(var.numpy().dtype), copy=False))


# -- writing -------------------------------------------------------------------------------------
def compile_to_keras(model, where: str):
    """The Keras ``compile_config`` of a compiled unidl model; None when it is not compiled,
    or (with a warning: the file is then uncompiled) when Keras has no equivalent."""
    args = getattr(model, "_compile_args", None)
    opt = getattr(model, "optimizer", None)
    if args is None or opt is None:
        return None
    try:
        name = type(opt).__name__
        if opt.weight_decay and opt._coupled_decay:
            raise KerasConfigError(f"{name}(weight_decay={opt.weight_decay}) adds the decay to "
                                   "the gradient; Keras' optimizers decouple it (use AdamW)")
        optimizer = object_to_keras(opt, where)
        optimizer["module"] = "keras.optimizers"
        if name == "Nadam":
            decay = optimizer["config"].pop("momentum_decay")
            if decay != _KERAS_NADAM_DECAY:
                raise KerasConfigError(f"Nadam(momentum_decay={decay}): Keras' Nadam uses the "
                                       f"schedule of momentum_decay={_KERAS_NADAM_DECAY}")
        for key in ("loss", "metrics"):
            value = args.get(key)
            if isinstance(value, dict):
                raise KerasConfigError(f"{key} given per output as a dict")
        return {"optimizer": optimizer, "loss": object_to_keras(args.get("loss"), where),
                "loss_weights": object_to_keras(args.get("loss_weights"), where),
                "metrics": object_to_keras(args.get("metrics"), where),
                "weighted_metrics": None, "run_eagerly": bool(args.get("run_eagerly")),
                "steps_per_execution": int(args.get("steps_per_execution") or 1),
                "jit_compile": bool(args.get("jit_compile"))}
    except (KerasConfigError, ValueError, TypeError) as exc:
        warnings.warn(f"{where}: saved uncompiled: the compile configuration of "
                      f"{model.name!r} has no Keras equivalent ({exc})", stacklevel=4)
        return None


def optimizer_arrays(model, layouts):
    """``(name, [arrays])`` of the built optimizer's variables in Keras' order; None when
    it is not built or its state does not map (a warning then says so)."""
    opt = getattr(model, "optimizer", None)
    if opt is None or not opt.built:
        return None
    order = optimizer_permutation(opt, keras_trainable_order(model, layouts))
    if order is None:
        warnings.warn(f"model.save: the state of {type(opt).__name__} is not saved in the "
                      ".keras file (Keras keeps it differently); Keras starts it fresh",
                      stacklevel=4)
        return None
    return opt.name, [v.numpy() for v in order]
