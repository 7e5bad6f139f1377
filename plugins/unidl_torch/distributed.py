"""The torch backend's distributed engine: ``torch.distributed`` process groups (gloo on
CPU, NCCL on CUDA), joined from the environment ``torchrun`` sets (``RANK``,
``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``, ``LOCAL_RANK``).

Gradients are averaged as DDP does, in buckets: the gradients are flattened into buffers of
about ``bucket_bytes``, every bucket's all-reduce is started asynchronously, then all are
awaited. (unidl's train step takes its gradients from ``torch.autograd.grad`` over leaves
made for that step, so the buckets start after the backward pass rather than during it.)
A collective that fails (a worker died) or times out raises
:class:`unidl.errors.DistributedError` naming the rank, the world and what was reduced.
"""

from __future__ import annotations

import atexit
import datetime
import os

import torch
import torch.distributed as dist

from unidl.distribute.engine import Engine
from unidl.errors import DistributedError

__all__ = ["TorchEngine"]


class TorchEngine(Engine):
    def __init__(self, options, device: str = "cpu"):
        self.rank, self.world_size = options.rank, options.world_size
        self.timeout = options.timeout
        self.bucket_bytes = max(1, options.bucket_bytes)
        self.backend = "nccl" if device.startswith("cuda") else "gloo"
        self.description = f"torch.distributed ({self.backend})"
        self._owned = False
        if self.world_size > 1 and not dist.is_initialized():
            self._join()

    def _join(self):
        missing = [k for k in ("MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
        if missing:
            raise DistributedError(
                f"DataParallel on torch: rank {self.rank} of {self.world_size} needs "
                f"{' and '.join(missing)} in the environment to find the other workers; start "
                "the script with `unidl launch --nproc N script.py` (or torchrun)")
        try:
            dist.init_process_group(self.backend, rank=self.rank, world_size=self.world_size,
                                    timeout=datetime.timedelta(seconds=self.timeout))
        except Exception as exc:
            raise DistributedError(
                f"DataParallel on torch: rank {self.rank} of {self.world_size} could not join "
                f"the {self.backend} process group at {os.environ['MASTER_ADDR']}:"
                f"{os.environ['MASTER_PORT']} within {self.timeout:g} s: {_first_line(exc)}"
            ) from None
        self._owned = True
        atexit.register(self.shutdown)

    # -- collectives ------------------------------------------------------------------------
    def all_reduce(self, tensors, op="sum"):
        if self.world_size == 1:
            return list(tensors)
        if torch.is_grad_enabled() and any(t.grad_fn is not None for t in tensors):
            out = self._guard("an all-reduce inside the step (synchronized statistics)",
                              lambda: [_SumOverWorkers.apply(t) for t in tensors])
        else:
            out = self._reduce_flat(list(tensors),
                                    "an all-reduce (weights, metrics or a barrier)")
        return [o / self.world_size for o in out] if op == "mean" else out

    def reduce_gradients(self, grads):
        if self.world_size == 1:
            return list(grads)
        summed = self._reduce_flat(list(grads), "the all-reduce of the gradients")
        return [g / self.world_size for g in summed]

    def _reduce_flat(self, tensors, what):
        """Sum of ``tensors`` over the workers, flattened into buckets reduced
        asynchronously (one bucket per dtype and ``bucket_bytes``)."""
        buckets = _buckets(tensors, self.bucket_bytes)

        def run():
            pending = []
            for members in buckets:
                flat = torch.cat([tensors[i].detach().reshape(-1) for i in members])
                pending.append((members, flat, dist.all_reduce(flat, async_op=True)))
            out = [None] * len(tensors)
            for members, flat, work in pending:
                work.wait()
                offset = 0
                for i in members:
                    n = tensors[i].numel()
                    out[i] = flat[offset:offset + n].view_as(tensors[i])
                    offset += n
            return out

        return self._guard(what, run)

    def _guard(self, what, fn):
        try:
            return fn()
        except DistributedError:
            raise
        except Exception as exc:  # (gloo/NCCL: a peer closed its connection, or a timeout)
            raise DistributedError(
                f"rank {self.rank} of {self.world_size}: {what} failed on "
                f"{self.description}: {_first_line(exc)}. Another worker probably stopped "
                f"(it died or raised); collectives wait at most {self.timeout:g} s "
                "(DataParallel(timeout=...))") from None

    def shutdown(self):
        if self._owned and dist.is_initialized():
            self._owned = False
            try:
                dist.destroy_process_group()
            except Exception:  # (at exit, after a failed peer: nothing left to close)
                pass


class _SumOverWorkers(torch.autograd.Function):
    """The sum over the workers, differentiable: the gradient of each worker's input is the
    sum of the workers' output gradients."""

    @staticmethod
    def forward(ctx, x):
        out = x.detach().clone()
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx, grad):
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)
        return grad


def _buckets(tensors, limit):
    """Indices of ``tensors`` grouped by dtype and device into buckets of at most ``limit``
    bytes (a larger tensor gets a bucket of its own), in reverse order (as DDP: the last
    layers' gradients are ready first)."""
    buckets, open_ = [], {}
    for i in reversed(range(len(tensors))):
        t = tensors[i]
        key = (t.dtype, t.device)
        size = t.numel() * t.element_size()
        members, used = open_.get(key, ([], 0))
        if members and used + size > limit:
            buckets.append(members)
            members, used = [], 0
        members.append(i)
        open_[key] = (members, used + size)
    buckets.extend(members for members, _ in open_.values() if members)
    return buckets


def _first_line(exc) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"
