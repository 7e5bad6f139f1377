"""Data-parallel training on the frameworks' own engines (``torch.distributed``,
``tf.distribute``): :class:`DataParallel`, launched with ``unidl launch --nproc N``.

See ``docs/distributed.md``.
"""

from __future__ import annotations

from unidl.distribute.engine import Engine, EngineOptions, world_from_env
from unidl.distribute.strategy import DataParallel, active_engine, get_strategy, is_chief
from unidl.errors import DistributedError

__all__ = ["DataParallel", "DistributedError", "Engine", "EngineOptions", "active_engine",
           "get_strategy", "is_chief", "world_from_env"]
