"""pluggy plugin declaring the ``tensorflow`` backend (found through the ``unidl`` entry point)."""

from __future__ import annotations

from unidl.backend import BackendEntry
from unidl.hookspecs import hookimpl


def _load():
    from unidl_tensorflow.backend import TensorFlowBackend  # imports tensorflow

    return TensorFlowBackend()


@hookimpl
def unidl_register_backends():
    return [BackendEntry(name="tensorflow", load=_load,
                         distributions=("tensorflow", "tensorflow-cpu", "tf-nightly"),
                         extra="tensorflow",
                         description="TensorFlow eager and tf.function, with tf.GradientTape",
                         exporters={"tf_saved_model":
                                    "unidl_tensorflow.export:export_saved_model"},
                         launcher="unidl_tensorflow.launch:launch_tensorflow")]


@hookimpl
def unidl_known_failures(backend_name):
    if backend_name != "tensorflow":
        return None
    from unidl_tensorflow.known_failures import KNOWN_FAILURES

    return KNOWN_FAILURES
