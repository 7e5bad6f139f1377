"""Recorded tapes for torch's compiled steps (:mod:`unidl.backend.tape`).

An MLP's step on a CPU is ~0.2-1 ms of GEMMs and ~0.1 ms of unidl Python around them
(layers, the dispatcher, the loss, the optimizer, the metrics' updates). The step's kernel
calls are recorded once per call signature and replayed without that Python, as the NumPy
backend does. A training step's gradient is two more recorded calls: :func:`make_leaves`
(the detached leaves ``torch.autograd`` differentiates with respect to) and
:func:`autograd_grad`; replaying the forward kernels on fresh leaves builds autograd's graph
again, so the replayed backward is torch's own. The grad mode is part of the signature.
Steps whose leaves go to a hook (data parallelism) or that differentiate twice run eagerly.
"""

from __future__ import annotations

import torch

from unidl.backend.tape import (
    bump_epoch,
    compile_function,
    is_recording,
    not_replayable,
    recorded,
    register_array_type,
)

__all__ = ["compile_function", "recorded", "is_recording", "bump_epoch", "not_replayable",
           "make_leaves", "autograd_grad"]


@recorded
def make_leaves(primals, create_graph):
    """The tensors ``torch.autograd`` differentiates with respect to: each float primal
    detached as a new leaf; one that already requires grad (an outer differentiation's
    input, ``create_graph``) viewed instead, so gradients of gradients stay connected."""
    return [(p.view_as(p) if p.requires_grad and create_graph
             else p.detach().requires_grad_(True))
            if p.is_floating_point() else p for p in primals]


@recorded
def autograd_grad(outputs, inputs, cotangents, create_graph):
    """``torch.autograd.grad`` (unused inputs get None)."""
    return torch.autograd.grad(outputs, inputs, cotangents, create_graph=create_graph,
                               allow_unused=True)


def _same_values(a, b) -> bool:
    return a.device == b.device and bool(torch.equal(a, b))


register_array_type(torch.Tensor, base=lambda o: getattr(o, "_base", None),
                    same_values=_same_values, numel=lambda a: a.numel(),
                    key=lambda a: (tuple(a.shape), a.dtype, a.device))
