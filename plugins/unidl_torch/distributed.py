"""The torch backend's distributed engine: ``torch.distributed`` process groups (gloo on
CPU, NCCL on CUDA), joined from the environment ``torchrun`` sets (``RANK``,
``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``, ``LOCAL_RANK``).

Gradients are averaged as DDP does, in buckets overlapped with the backward pass: for each
train step (:meth:`TorchEngine.replica_step`) the engine hooks the leaves the backend makes
for the step's vjp; as the backward pass produces the gradients (the last layers' first),
each bucket of about ``bucket_bytes`` whose gradients are all there is flattened and its
all-reduce started asynchronously, in bucket order (the same on every worker); the step
then waits for them (:meth:`TorchEngine.reduce_gradients`), starting any bucket a gradient
never reached (an unused variable: its zeros).
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
    def __init__(self, options, device: str = "cpu", backend=None):
        self.rank, self.world_size = options.rank, options.world_size
        self.timeout = options.timeout
        self.bucket_bytes = max(1, options.bucket_bytes)
        self.backend = "nccl" if device.startswith("cuda") else "gloo"
        self.description = f"torch.distributed ({self.backend})"
        self._owned = False
        self._backend = backend
        self._step = None  # (the _OverlappedStep of the train step running now)
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

    def replica_step(self, fn):
        """``fn`` with its gradients' buckets reduced during its backward pass (eager steps;
        inside ``torch.compile`` the reduction runs after the backward pass)."""
        if self.world_size == 1 or self._backend is None:
            return fn

        def step(*args):
            if torch.compiler.is_compiling():
                return fn(*args)
            self._step = _OverlappedStep(self)
            self._backend.leaf_hook = self._step.attach
            try:
                return fn(*args)
            finally:
                self._backend.leaf_hook, self._step = None, None

        return step

    def reduce_gradients(self, grads):
        if self.world_size == 1:
            return list(grads)
        step, what = self._step, "the all-reduce of the gradients"
        if step is not None and step.attached(grads):
            summed = self._guard(what, lambda: step.finish(grads))
        else:
            summed = self._reduce_flat(list(grads), what)
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
            return _awaited(pending, tensors, [None] * len(tensors))

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


class _OverlappedStep:
    """One train step's gradient buckets, started from the leaves' gradient hooks."""

    def __init__(self, engine):
        self.engine = engine
        self.leaves, self.buckets, self.grads, self.works = [], [], {}, []
        self.missing, self.launched = [], 0
        self.failure = None

    def attach(self, leaves):
        self.leaves = list(leaves)
        self.buckets = _buckets(self.leaves, self.engine.bucket_bytes)
        self.buckets = [[i for i in b if self.leaves[i].requires_grad] for b in self.buckets]
        self.buckets = [b for b in self.buckets if b]
        self.missing = [len(b) for b in self.buckets]
        where = {i: k for k, b in enumerate(self.buckets) for i in b}
        for i, leaf in enumerate(self.leaves):
            if i in where:
                leaf.register_hook(self._hook(i, where[i]))

    def attached(self, grads) -> bool:
        return bool(self.buckets) and len(grads) == len(self.leaves)

    def _hook(self, i, k):
        def ready(grad):
            self.grads[i] = grad
            self.missing[k] -= 1
            if self.missing[k] == 0 and self.failure is None:
                try:
                    self._launch_ready()
                except Exception as exc:  # (raised again, named, by finish)
                    self.failure = exc
        return ready

    def _launch_ready(self):
        while self.launched < len(self.buckets) and self.missing[self.launched] <= 0:
            members = self.buckets[self.launched]
            flat = torch.cat([self.grads[i].detach().reshape(-1) for i in members])
            self.works.append((members, flat, dist.all_reduce(flat, async_op=True)))
            self.launched += 1

    def finish(self, grads):
        """The summed gradients (``grads`` fills any a hook never saw)."""
        if self.failure is not None:
            raise self.failure
        for k, members in enumerate(self.buckets):
            for i in members:
                if i not in self.grads:
                    self.grads[i] = grads[i]
                    self.missing[k] -= 1
        self._launch_ready()
        return _awaited(self.works, grads, list(grads))


def _awaited(pending, like, out):
    """``out`` with each bucket's reduced values put back in place: ``pending`` holds
    ``(member indices, flat buffer, work)``, waited for in order; ``like[i]`` gives member
    ``i``'s shape."""
    for members, flat, work in pending:
        work.wait()
        offset = 0
        for i in members:
            n = like[i].numel()
            out[i] = flat[offset:offset + n].view_as(like[i])
            offset += n
    return out


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
