"""``unidl launch`` on TensorFlow: ``nproc`` workers of a ``MultiWorkerMirroredStrategy``
cluster on this machine, each told its place through ``TF_CONFIG``.

One machine: every worker gets a free loopback port (``localhost:P``). Several machines:
pass ``--workers host:port,host:port,...`` listing every worker of the world in rank order
(``nnodes * nproc`` addresses, the same list on every machine) with ``--nnodes`` and
``--node-rank``; this machine runs workers ``node_rank * nproc`` to ``node_rank * nproc +
nproc - 1``, which listen on their listed ports. (Without ``unidl launch``, set
``TF_CONFIG`` in each worker's environment yourself: unidl reads it.)

Each worker also gets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``; the processes are
supervised by :func:`unidl.distribute.launch.spawn_workers`. Nothing here imports
TensorFlow (the workers do).
"""

from __future__ import annotations

import json

from unidl.distribute.launch import (
    LaunchOptions,
    free_ports,
    spawn_workers,
    worker_command,
    worker_environ,
)
from unidl.errors import DistributedError

__all__ = ["launch_tensorflow", "cluster_addresses", "worker_envs"]


def launch_tensorflow(nproc: int, argv: list[str], options: LaunchOptions) -> int:
    """Start this machine's ``nproc`` workers running ``argv``; their exit status."""
    envs = worker_envs(cluster_addresses(options), options)
    return spawn_workers(worker_command(argv, options), envs, options.timeout)


def cluster_addresses(options: LaunchOptions) -> list[str]:
    """Every worker's ``host:port``, in rank order: ``--workers``, else (one machine) free
    loopback ports."""
    if options.workers:
        return list(options.workers)
    if options.nnodes > 1:
        raise DistributedError(
            f"unidl launch: TensorFlow on {options.nnodes} machines needs the address of "
            f"every worker: --workers host:port,... ({options.world_size} addresses in rank "
            "order, the same on every machine)")
    return [f"localhost:{port}" for port in free_ports(options.nproc)]


def worker_envs(addresses: list[str], options: LaunchOptions) -> list[dict[str, str]]:
    """The environment of each of this machine's workers: ``TF_CONFIG`` (the cluster and
    the worker's index), ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``."""
    first = options.node_rank * options.nproc
    envs = []
    for local in range(options.nproc):
        rank = first + local
        config = {"cluster": {"worker": addresses},
                  "task": {"type": "worker", "index": rank}}
        envs.append(worker_environ(options, TF_CONFIG=json.dumps(config), RANK=str(rank),
                                   WORLD_SIZE=str(len(addresses)), LOCAL_RANK=str(local)))
    return envs
