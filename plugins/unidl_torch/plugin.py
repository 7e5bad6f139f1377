"""pluggy plugin declaring the ``torch`` backend (found through the ``unidl`` entry point)."""

from __future__ import annotations

from unidl.backend import BackendEntry
from unidl.hookspecs import hookimpl


def _load():
    from unidl_torch.backend import TorchBackend  # imports torch

    return TorchBackend()


@hookimpl
def unidl_register_backends():
    return [BackendEntry(name="torch", load=_load, distributions=("torch",), extra="torch",
                         description="PyTorch eager, with torch.autograd",
                         exporters={"torch": "unidl_torch.export:export_torch"},  # .pt2
                         launcher="unidl_torch.launch:launch_torch")]  # torchrun


@hookimpl
def unidl_known_failures(backend_name):
    if backend_name != "torch":
        return None
    from unidl_torch.known_failures import KNOWN_FAILURES

    return KNOWN_FAILURES
