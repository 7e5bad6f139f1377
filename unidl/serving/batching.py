"""Server-side batching for ``unidl serve``: concurrent requests become one ``predict`` call.

A request is queued with its arrays (batch axis first). The batcher takes the oldest queued
request and waits until either ``max_batch_size`` samples of the same per-sample shapes and
dtypes are queued or ``batch_timeout_ms`` have passed since that request arrived; it then
concatenates them along the batch axis, runs ONE prediction in its worker thread (the event
loop keeps accepting and parsing requests meanwhile) and splits the outputs back per request.
Requests that queue while a prediction runs form the next batch.

* ``max_batch_size=1`` turns batching off (one prediction per request).
* ``batch_timeout_ms=0`` never waits: a batch is whatever is queued when the worker is free.
* A request with more samples than ``max_batch_size`` runs on its own (it is not split).
* When a batch of several requests fails, each request is run again on its own, so one bad
  request cannot fail the others.

Predictions run one at a time in one thread: the model is never called concurrently.
"""

from __future__ import annotations

import asyncio
import collections
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

__all__ = ["Batcher", "BatchStats"]


@dataclass
class BatchStats:
    """Counters of a :class:`Batcher`: predictions run, requests and samples they served, and
    the largest batch (in samples)."""

    predictions: int = 0
    requests: int = 0
    samples: int = 0
    largest: int = 0


@dataclass
class _Item:
    arrays: list
    rows: int
    key: tuple
    future: asyncio.Future
    arrived: float


class Batcher:
    """Queues requests and runs them through ``predict`` in batches.

    ``predict(arrays) -> list of arrays`` takes one array per model input and returns one
    array per output, all with the samples along the first axis; it runs in the batcher's
    worker thread. ``stats`` counts what ran.
    """

    def __init__(self, predict, max_batch_size: int = 32, batch_timeout_ms: float = 0.0):
        if int(max_batch_size) < 1:
            raise ValueError(f"max_batch_size must be at least 1, got {max_batch_size}")
        if not float(batch_timeout_ms) >= 0:
            raise ValueError(f"batch_timeout_ms must be >= 0, got {batch_timeout_ms}")
        self.predict = predict
        self.max_batch_size = int(max_batch_size)
        self.batch_timeout_ms = float(batch_timeout_ms)
        self.stats = BatchStats()
        self._pending: collections.deque = collections.deque()
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._loop = None
        self._executor: ThreadPoolExecutor | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        """Start the batching task on the running event loop (done by the first submit)."""
        loop = asyncio.get_running_loop()
        if self._task is not None and self._loop is loop and not self._task.done():
            return
        self._loop = loop
        self._wakeup = asyncio.Event()
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="unidl-predict")
        self._task = loop.create_task(self._run_forever())

    async def run_in_worker(self, fn, *args):
        """``fn(*args)`` in the worker thread (where predictions run), awaited."""
        self.start()
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def close(self) -> None:
        """Stop batching: queued requests fail with a 503 error, the worker thread ends after
        the prediction it is running."""
        from unidl.serving.validation import RequestError

        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        while self._pending:
            item = self._pending.popleft()
            if not item.future.done():
                item.future.set_exception(RequestError("the server is shutting down", 503))
        if self._executor is not None:
            executor, self._executor = self._executor, None
            await asyncio.get_running_loop().run_in_executor(None, executor.shutdown, True)

    # -- requests ----------------------------------------------------------------------------
    async def submit(self, arrays: list) -> tuple[list, int]:
        """Predict ``arrays`` (one per model input, samples first) within a batch; return
        (this request's outputs, the number of samples in the prediction that served it)."""
        self.start()
        loop = asyncio.get_running_loop()
        key = tuple((a.shape[1:], a.dtype.str) for a in arrays)
        item = _Item(list(arrays), len(arrays[0]), key, loop.create_future(), loop.time())
        self._pending.append(item)
        self._wakeup.set()
        return await item.future

    # -- the batching task -------------------------------------------------------------------
    async def _run_forever(self) -> None:
        while True:
            while not self._pending:
                self._wakeup.clear()
                await self._wakeup.wait()
            batch = await self._collect()
            if batch:
                await self._execute(batch)

    async def _collect(self) -> list:
        """Wait for the oldest request's batch to fill or time out; take it off the queue."""
        first = self._pending[0]
        deadline = first.arrived + self.batch_timeout_ms / 1000.0
        loop = asyncio.get_running_loop()
        while self._queued_rows(first.key) < self.max_batch_size:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), remaining)
            except asyncio.TimeoutError:
                break
        return self._take(first.key)

    def _queued_rows(self, key) -> int:
        return sum(i.rows for i in self._pending if i.key == key and not i.future.done())

    def _take(self, key) -> list:
        """The queued requests of ``key``, oldest first, up to ``max_batch_size`` samples
        (at least one request); the others stay queued in order."""
        take, keep, rows, full = [], collections.deque(), 0, False
        for item in self._pending:
            if item.future.done():  # the client went away
                continue
            if item.key == key and not full and (not take
                                                 or rows + item.rows <= self.max_batch_size):
                take.append(item)
                rows += item.rows
            else:
                full = full or item.key == key
                keep.append(item)
        self._pending = keep
        return take

    async def _execute(self, batch: list) -> None:
        """One prediction for ``batch``; outputs split back to each request's future."""
        loop = asyncio.get_running_loop()
        if len(batch) == 1:
            arrays = batch[0].arrays
        else:
            arrays = [np.concatenate([item.arrays[k] for item in batch])
                      for k in range(len(batch[0].arrays))]
        rows = sum(item.rows for item in batch)
        try:
            outputs = await loop.run_in_executor(self._executor, self.predict, arrays)
            parts = _split(outputs, [item.rows for item in batch])
        except Exception as exc:  # noqa: BLE001 - reported to the request(s)
            if len(batch) == 1:
                _resolve(batch[0].future, exc=exc)
                return
            for item in batch:  # one bad request must not fail the others
                await self._execute([item])
            return
        self._count(len(batch), rows)
        for item, part in zip(batch, parts):
            _resolve(item.future, (part, rows))

    def _count(self, requests: int, rows: int) -> None:
        self.stats.predictions += 1
        self.stats.requests += requests
        self.stats.samples += rows
        self.stats.largest = max(self.stats.largest, rows)


def _split(outputs: list, sizes: list) -> list:
    """Per request, its slice of every output (outputs must have one row per sample)."""
    total = sum(sizes)
    if len(sizes) == 1:
        return [list(outputs)]
    for out in outputs:
        if np.ndim(out) == 0 or len(out) != total:
            raise ValueError(f"an output of shape {np.shape(out)} has no row per sample "
                             f"({total} samples); it cannot be split per request")
    offsets = np.cumsum(sizes)[:-1]
    pieces = [np.split(out, offsets) for out in outputs]
    return [[p[i] for p in pieces] for i in range(len(sizes))]


def _resolve(future: asyncio.Future, result=None, exc: Exception | None = None) -> None:
    if future.done():  # cancelled: the client went away
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)
