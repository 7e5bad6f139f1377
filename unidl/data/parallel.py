"""The stages that may run on threads: ``map`` (a pool of workers, order preserved) and
``prefetch`` (one producer thread and a bounded queue).

NumPy, PyTorch and TensorFlow release the GIL inside their kernels, so threads overlap the
array work of the pipeline with the model's steps. Threads run with the iterating thread's
backend and device (a ``map`` function may call unidl ops), are started when the iteration
starts and stopped, and joined, when it ends or is abandoned. In deterministic mode
(:func:`unidl.random.set_deterministic`) both stages run in the iterating thread instead,
so that random draws inside ``map`` functions keep a fixed order with the model's draws.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import itertools
import queue
import threading
import time
import warnings

from unidl.data.dataset import (
    AUTOTUNE,
    Dataset,
    background_allowed,
    call,
    cpu_count,
    thread_context,
    to_host,
)
from unidl.data.transforms import closing

__all__ = ["MapDataset", "PrefetchDataset"]

#: how long abandoning an iteration waits for a thread busy computing an element
JOIN_TIMEOUT_S = 60.0
#: the buffer ``prefetch(AUTOTUNE)`` uses
AUTOTUNE_BUFFER = 2
#: a parallel ``map`` hands elements to its threads in chunks taking about this long
TASK_S = 0.002
MAX_CHUNK = 64


def _threads(where, value, auto):
    if value is None:
        return 1
    if value == AUTOTUNE:
        return auto
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"Dataset.{where}: expected a positive int, unidl.data.AUTOTUNE or "
                         f"None, got {value!r}")
    return value


class MapDataset(Dataset):
    """``fn`` applied to every element (a tuple element is passed as positional arguments,
    as in ``tf.data``). ``fn`` gets host NumPy arrays and may use NumPy or unidl ops; what
    it returns (arrays, tensors, tuples or dicts of them) is brought back to the host.

    ``num_parallel_calls``: None runs ``fn`` in the iterating thread; ``n`` (or
    :data:`~unidl.data.AUTOTUNE`: one per CPU) on ``n`` worker threads, the output order
    being the input order. Elements go to the threads in chunks of consecutive elements
    sized from the measured time of ``fn`` (one element at a time for slow functions, up to
    64 for fast ones), at most ``2n`` chunks ahead. An exception from ``fn`` reaches the
    iterating thread after the results of the elements before it.

    Example:
        >>> import numpy as np
        >>> from unidl.data import AUTOTUNE, Dataset
        >>> ds = Dataset.from_tensor_slices(np.arange(8)).map(lambda v: v * v,
        ...                                                   num_parallel_calls=AUTOTUNE)
        >>> [int(v) for v in ds.as_numpy_iterator()]
        [0, 1, 4, 9, 16, 25, 36, 49]
    """

    def __init__(self, upstream, fn, num_parallel_calls=None):
        if not callable(fn):
            raise TypeError(f"Dataset.map needs a callable, got {type(fn).__name__}")
        self.upstream, self.fn = upstream, fn
        self.workers = _threads("map: num_parallel_calls", num_parallel_calls, cpu_count())

    def cardinality(self) -> int:
        return self.upstream.cardinality()

    def _apply(self, element):
        return to_host(call(self.fn, element))

    def _open(self, seeds):
        elements = self.upstream._open(seeds)
        if self.workers > 1 and background_allowed():
            return self._parallel(elements, _Workers(self._apply, self.workers,
                                                     thread_context()))
        return self._sequential(elements)

    def _sequential(self, elements):
        with closing(elements):
            for element in elements:
                yield self._apply(element)

    def _parallel(self, elements, workers):
        """``fn`` over ``elements`` on ``workers``, in chunks of consecutive elements (as
        many as take about :data:`TASK_S` seconds, so cheap functions are not dominated by
        handing elements to threads), at most ``2n`` chunks ahead; results in order."""
        pending = collections.deque()
        window, chunk = 2 * workers.n, 1
        try:
            with closing(elements):
                while True:
                    group = list(itertools.islice(elements, chunk))
                    if not group:
                        break
                    pending.append(workers.submit(group))
                    if len(pending) >= window:
                        yield from _results(pending.popleft())
                    chunk = workers.chunk_size()
            while pending:
                yield from _results(pending.popleft())
        finally:
            workers.stop()


def _results(future):
    """A chunk's results in order; then its error, if an element failed."""
    results, error = future.result()
    yield from results
    if error is not None:
        raise error


class _Workers:
    """``n`` threads applying ``fn`` to submitted chunks of elements; ``submit`` returns a
    ``Future`` of ``(results, error or None)``. Started on the first submit; ``stop`` skips
    what is queued and joins them. Keeps the mean time of ``fn`` per element."""

    def __init__(self, fn, n, enter):
        self.fn, self.n, self.enter = fn, n, enter
        self.tasks = queue.SimpleQueue()
        self.stopped = False
        self.threads = []
        self.seconds, self.count = 0.0, 0

    def submit(self, group):
        if not self.threads:
            self.threads = [threading.Thread(target=self._run, name=f"unidl-data-map-{i}",
                                             daemon=True) for i in range(self.n)]
            for thread in self.threads:
                thread.start()
        future = concurrent.futures.Future()
        self.tasks.put((future, group))
        return future

    def chunk_size(self) -> int:
        if not self.count:
            return 1
        per_element = self.seconds / self.count
        return max(1, min(MAX_CHUNK, int(TASK_S / max(per_element, 1e-7))))

    def _run(self):
        with contextlib.ExitStack() as stack:
            self.enter(stack)
            while True:
                task = self.tasks.get()
                if task is None:
                    return
                future, group = task
                if self.stopped:
                    future.cancel()
                    continue
                future.set_result(self._apply(group))

    def _apply(self, group):
        results, error, start = [], None, time.perf_counter()
        try:
            for element in group:
                results.append(self.fn(element))
        except BaseException as exc:  # (raised in the consumer after the results before it)
            error = exc
        self.seconds += time.perf_counter() - start  # (statistics: races are harmless)
        self.count += len(results) + (error is not None)
        return results, error

    def stop(self):
        self.stopped = True
        for _ in self.threads:
            self.tasks.put(None)
        _join(self.threads, "map")


def _join(threads, what):
    for thread in threads:
        thread.join(JOIN_TIMEOUT_S)
        if thread.is_alive():
            warnings.warn(f"unidl.data: a {what} thread is still computing an element "
                          f"{JOIN_TIMEOUT_S:.0f} s after the iteration ended; it stops after "
                          "that element", RuntimeWarning, stacklevel=3)


class PrefetchDataset(Dataset):
    """The upstream elements, prepared ahead by a background thread into a queue of at most
    ``buffer_size`` elements (:data:`~unidl.data.AUTOTUNE`: 2), so the pipeline works while
    the model trains. An exception in the pipeline is raised in the iterating thread; the
    thread stops (and is joined) when the iteration ends or is abandoned.

    Example:
        >>> import threading
        >>> import numpy as np
        >>> from unidl.data import Dataset
        >>> before = threading.active_count()
        >>> ds = Dataset.from_tensor_slices(np.arange(100)).batch(10).prefetch(2)
        >>> for batch in ds.as_numpy_iterator():
        ...     break  # abandoned: the producer thread stops
        >>> del batch
        >>> threading.active_count() == before
        True
    """

    def __init__(self, upstream, buffer_size):
        self.upstream = upstream
        self.buffer_size = _threads("prefetch: buffer_size", buffer_size, AUTOTUNE_BUFFER)

    def cardinality(self) -> int:
        return self.upstream.cardinality()

    def _open(self, seeds):
        elements = self.upstream._open(seeds)
        if not background_allowed():
            return elements
        return self._prefetched(elements, thread_context())

    def _prefetched(self, elements, enter):
        buffer = queue.Queue(maxsize=self.buffer_size)
        stop = threading.Event()
        thread = threading.Thread(target=_produce, args=(elements, buffer, stop, enter),
                                  name="unidl-data-prefetch", daemon=True)
        thread.start()
        try:
            while True:
                item = buffer.get()
                if item is _END:
                    return
                if isinstance(item, _Raised):
                    raise item.error
                yield item
        finally:
            stop.set()
            with contextlib.suppress(queue.Empty):
                while True:
                    buffer.get_nowait()  # (unblocks a producer waiting to put)
            _join([thread], "prefetch")


_END = object()


class _Raised:
    __slots__ = ("error",)

    def __init__(self, error):
        self.error = error


def _produce(elements, buffer, stop, enter):
    """The producer thread: upstream elements into ``buffer`` until the end, an error, or
    ``stop``; the upstream iterator is closed in this thread."""
    try:
        with contextlib.ExitStack() as stack:
            enter(stack)
            with closing(elements):
                for element in elements:
                    if not _put(buffer, element, stop):
                        return
        _put(buffer, _END, stop)
    except BaseException as exc:  # (re-raised in the iterating thread)
        _put(buffer, _Raised(exc), stop)


def _put(buffer, item, stop):
    while not stop.is_set():
        try:
            buffer.put(item, timeout=0.05)
            return True
        except queue.Full:
            continue
    return False
