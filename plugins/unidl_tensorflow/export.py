"""``model.export(path, format="tf_saved_model")``: a SavedModel directory for TF Serving.

The model's traced graph (:mod:`unidl.export.graph`, from whichever backend the model lives
on) is replayed with this backend's unidl kernels inside a ``tf.function`` whose input
signature has a ``None`` batch dimension; the graph's constants are ``tf.Variable`` objects
of a ``tf.Module`` (named after the weights). ``tf.saved_model.save`` writes the
directory (``saved_model.pb``, ``variables/``, ``assets/``) with the ``serving_default``
signature: input ``input``, output ``output_0`` (``output_0``, ``output_1``, ... for several).
Loading needs TensorFlow only::

    serve = tf.saved_model.load("model_dir").signatures["serving_default"]
    y = serve(input=tf.constant(x))["output_0"]
"""

from __future__ import annotations

import os
import re

import numpy as np
import tensorflow as tf

from unidl.backend.state import use_backend
from unidl.export import ExportError
from unidl.export.files import atomic_dir
from unidl.export.graph import Graph, run_graph

__all__ = ["export_saved_model", "SIGNATURE"]

FORMAT = "tf_saved_model"
#: the signature TF Serving calls by default
SIGNATURE = "serving_default"


def _failure(node, exc) -> ExportError:
    text = str(exc).strip().splitlines()
    first = (text[0] if text else type(exc).__name__)[:400]
    return ExportError(f"{node.where()} cannot be exported to format {FORMAT!r}: {first}")


def _variable_name(name: str, k: int) -> str:
    return re.sub(r"[^A-Za-z0-9_./-]", "_", name) if name else f"constant_{k}"


def _module(graph: Graph, backend) -> tf.Module:
    """A ``tf.Module`` holding the constants as variables and the ``serve`` function."""
    module = tf.Module(name=re.sub(r"\W", "_", graph.name) or "model")
    constants = graph.constants()
    with use_backend(backend.name):
        module.constants = [tf.Variable(backend.convert(np.asarray(v.array)), trainable=False,
                                        name=_variable_name(v.name, k))
                            for k, v in enumerate(constants)]
    ids = [v.id for v in constants]
    (value,) = graph.input_values()
    spec = tf.TensorSpec((None,) + tuple(value.shape[1:]), backend.native_dtype(value.dtype),
                         name="input")

    @tf.function(input_signature=[spec], autograph=False)
    def serve(input):  # noqa: A002 - the signature's input name
        with use_backend(backend.name):
            values = {vid: tf.convert_to_tensor(var) for vid, var in zip(ids, module.constants)}
            outs = run_graph(graph, [input], values, fail=_failure)
        return {f"output_{i}": out for i, out in enumerate(outs)}

    module.serve = serve
    return module


def export_saved_model(graph: Graph, path, **options) -> str:
    """Write ``graph`` as a SavedModel directory at ``path`` (atomically: written under a
    temporary name next to it, then renamed; an existing directory there is replaced).

    Raises:
        ExportError: an op cannot be traced symbolically (naming the layer and the op), the
            graph has several inputs, or an option is unknown.
    """
    from unidl.backend.registry import get_backend

    if options:
        raise ExportError(f"format {FORMAT!r} takes no options, got {sorted(options)}")
    if len(graph.inputs) != 1:
        raise ExportError(f"format {FORMAT!r}: exports take one input, the graph has "
                          f"{len(graph.inputs)}")
    backend = get_backend("tensorflow")
    module = _module(graph, backend)
    try:
        concrete = module.serve.get_concrete_function()
    except ExportError:
        raise
    except Exception as exc:
        cause = exc.__cause__ if isinstance(exc.__cause__, ExportError) else None
        if cause is not None:
            raise cause from exc
        raise ExportError(f"format {FORMAT!r}: the model could not be traced with a "
                          f"dynamic batch axis: {str(exc).strip()[:400]}") from exc
    with atomic_dir(path) as tmp:
        tf.saved_model.save(module, tmp, signatures={SIGNATURE: concrete})
        os.makedirs(os.path.join(tmp, "assets"), exist_ok=True)  # (TF Serving's layout)
    return str(path)
