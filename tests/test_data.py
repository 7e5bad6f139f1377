"""unidl.data pipelines: every transformation against a plain-Python expectation, shuffle
determinism on every backend, threads (map keeps order, prefetch re-raises and leaves no
thread behind), cache and cardinality."""

from __future__ import annotations

import doctest
import itertools
import math
import random
import threading
import time

import numpy as np
import pytest

import unidl
from tests.conftest import BACKENDS
from unidl import ops
from unidl.data import AUTOTUNE, INFINITE, UNKNOWN, Dataset


def values(ds):
    """A dataset's elements as plain Python values."""
    return [_plain(e) for e in ds.as_numpy_iterator()]


def _plain(element):
    if isinstance(element, tuple):
        return tuple(_plain(e) for e in element)
    if isinstance(element, dict):
        return {k: _plain(v) for k, v in element.items()}
    return np.asarray(element).tolist()


def _range(n):
    return Dataset.from_tensor_slices(np.arange(n))


@pytest.fixture
def no_new_threads():
    """The test leaves no thread behind."""
    before = set(threading.enumerate())
    yield
    left = [t.name for t in threading.enumerate() if t not in before]
    assert not left, left


# -- sources ---------------------------------------------------------------------------------
def test_from_tensor_slices_of_arrays_tuples_and_dicts():
    x, y = np.arange(12).reshape(4, 3), np.arange(4) * 10
    assert values(Dataset.from_tensor_slices(x)) == x.tolist()
    assert values(Dataset.from_tensor_slices((x, y))) == list(zip(x.tolist(), y.tolist()))
    nested = Dataset.from_tensor_slices({"a": x, "b": (y, y + 1)})
    assert values(nested) == [{"a": x[i].tolist(), "b": (int(y[i]), int(y[i]) + 1)}
                              for i in range(4)]
    assert Dataset.from_tensor_slices([[1, 2], [3, 4]]).cardinality() == 2  # a list: one array


def test_from_tensor_slices_takes_any_backends_tensors_and_keeps_numpy(backend):
    x = ops.convert_to_tensor(np.arange(6, dtype="float32").reshape(3, 2))
    ds = Dataset.from_tensor_slices((x, np.arange(3)))
    first = next(ds.as_numpy_iterator())
    assert isinstance(first[0], np.ndarray) and first[0].tolist() == [0.0, 1.0]
    xb, yb = next(iter(ds.batch(3)))  # iterating: the active backend's tensors
    assert ops.is_tensor(xb) and ops.is_tensor(yb) and ops.shape(xb) == (3, 2)
    assert ops.dtype(xb) == "float32"


def test_from_tensor_slices_errors():
    with pytest.raises(ValueError, match=r"same length.*tensors\[0\] has 3, tensors\[1\] has 2"):
        Dataset.from_tensor_slices((np.ones(3), np.ones(2)))
    with pytest.raises(ValueError, match="scalar"):
        Dataset.from_tensor_slices(np.float32(1.0))
    with pytest.raises(ValueError, match="list is read as ONE array.*tuple"):
        Dataset.from_tensor_slices([np.ones(3), np.ones(2)])


def test_from_generator_is_called_for_every_pass():
    calls = []

    def gen(n):
        calls.append(n)
        yield from ((i, [i, i]) for i in range(n))

    ds = Dataset.from_generator(gen, args=(3,))
    assert values(ds) == [(0, [0, 0]), (1, [1, 1]), (2, [2, 2])]
    assert values(ds) == values(ds) and calls == [3, 3, 3]
    assert ds.cardinality() == UNKNOWN
    with pytest.raises(TypeError, match="callable"):
        Dataset.from_generator(gen(3))


def test_elements_convert_at_the_end_and_strings_stay_numpy(backend):
    ds = Dataset.from_tensor_slices((np.arange(4.0), np.array([b"a", b"b", b"c", b"d"])))
    number, text = next(iter(ds))
    assert ops.is_tensor(number) and isinstance(text, np.bytes_ | np.ndarray)


# -- transformations against plain Python ----------------------------------------------------
@pytest.mark.parametrize("n, size, drop", [(10, 3, False), (10, 3, True), (9, 3, False),
                                           (2, 5, False), (2, 5, True), (0, 2, False)])
def test_batch_is_consecutive_chunks(n, size, drop):
    chunks = [list(range(i, min(i + size, n))) for i in range(0, n, size)]
    if drop:
        chunks = [c for c in chunks if len(c) == size]
    for ds in (_range(n), Dataset.from_generator(lambda: iter(range(n))),
               _range(n).map(lambda v: v)):  # (slices, stacking; known and unknown lengths)
        batched = ds.batch(size, drop_remainder=drop)
        assert values(batched) == chunks
    assert _range(n).batch(size, drop).cardinality() == len(chunks)


def test_batch_of_structures_and_its_errors():
    ds = Dataset.from_generator(lambda: ({"a": np.ones(2) * i, "b": i} for i in range(3)))
    batches = list(ds.batch(2).as_numpy_iterator())
    assert batches[0]["a"].shape == (2, 2) and batches[1]["b"].tolist() == [2]
    ragged = Dataset.from_generator(lambda: (np.ones(i + 1) for i in range(4)))
    with pytest.raises(ValueError, match=r"batch 0 mixes elements of shapes \(1,\), \(2,\)"):
        list(ragged.batch(2).as_numpy_iterator())
    with pytest.raises(ValueError, match="batch_size must be an int >= 1"):
        _range(3).batch(0)


def test_map_filter_repeat_take_skip_match_python():
    assert values(_range(6).map(lambda v: v * 3 + 1)) == [v * 3 + 1 for v in range(6)]
    pairs = Dataset.from_tensor_slices((np.arange(5), np.arange(5) * 2))
    assert values(pairs.map(lambda a, b: (b, a + b))) == [(2 * v, 3 * v) for v in range(5)]
    assert values(_range(10).filter(lambda v: v % 3 != 1)) == [v for v in range(10)
                                                                if v % 3 != 1]
    assert values(_range(3).repeat(3)) == [0, 1, 2] * 3
    assert values(_range(3).repeat().take(8)) == list(itertools.islice(
        itertools.cycle(range(3)), 8))
    for k in (0, 2, 7, -1):
        assert values(_range(5).take(k)) == (list(range(5)) if k < 0 else list(range(5))[:k])
        assert values(_range(5).skip(k)) == ([] if k < 0 else list(range(5))[k:])
    assert values(_range(0).repeat()) == []  # an empty pass ends the repetition


def test_map_may_use_unidl_ops_and_gets_numpy(backend):
    seen = []

    def double(v):
        seen.append(type(v))
        return ops.multiply(ops.convert_to_tensor(v), 2)  # the active backend's tensor

    out = list(_range(4).map(double).as_numpy_iterator())
    assert [int(v) for v in out] == [0, 2, 4, 6]
    assert all(isinstance(v, np.ndarray) for v in out)  # back on the host inside
    assert all(t in (np.ndarray, np.int64) or issubclass(t, np.generic) for t in seen)


def test_filter_predicate_must_be_one_boolean():
    with pytest.raises(ValueError, match="one boolean per element.*shape \\(2,\\)"):
        values(Dataset.from_tensor_slices(np.ones((3, 2))).filter(lambda v: v > 0))


# -- shuffle ---------------------------------------------------------------------------------
def test_shuffle_is_a_bounded_permutation():
    n, size = 200, 10
    out = values(_range(n).shuffle(size, seed=3))
    assert sorted(out) == list(range(n)) and out != list(range(n))
    for position, value in enumerate(out):  # never more than size - 1 places earlier
        assert value <= position + size - 1
    assert values(_range(20).shuffle(1)) == list(range(20))  # a buffer of one: no change


def test_shuffle_seeds_and_reshuffling():
    def order(ds):
        return values(ds)

    seeded = _range(50).shuffle(50, seed=7)
    first, second = order(seeded), order(seeded)
    assert first != second  # a new order each pass
    assert first == order(_range(50).shuffle(50, seed=7))  # the same seed, the same order
    fixed = _range(50).shuffle(50, seed=7, reshuffle_each_iteration=False)
    assert order(fixed) == order(fixed)
    unidl.random.set_seed(11)
    a = order(_range(50).shuffle(50))
    unidl.random.set_seed(11)
    assert order(_range(50).shuffle(50)) == a  # seed=None follows unidl.random


def test_shuffle_under_repeat_differs_per_pass_and_repeats_with_the_seed():
    unidl.random.set_seed(5)
    out = values(_range(10).shuffle(10).repeat(3))
    passes = [out[i:i + 10] for i in (0, 10, 20)]
    assert all(sorted(p) == list(range(10)) for p in passes)
    assert len({tuple(p) for p in passes}) == 3
    unidl.random.set_seed(5)
    assert values(_range(10).shuffle(10).repeat(3)) == out


def test_deterministic_mode_gives_the_same_pipeline_on_every_backend():
    """Same seed: the same shuffle order and the same results of a map drawing random
    numbers from unidl.random, on threads, on every backend."""
    def pipeline():
        rng = unidl.random.host_rng
        return (Dataset.from_tensor_slices(np.arange(64, dtype="float32"))
                .shuffle(16)
                .map(lambda v: v + np.float32(rng().random()), num_parallel_calls=4)
                .batch(8).prefetch(2))

    results = {}
    unidl.random.set_deterministic(True)
    try:
        for name in BACKENDS:
            with unidl.use_backend(name):
                unidl.random.set_seed(0)
                results[name] = np.concatenate([ops.to_numpy(b) for b in pipeline()])
                assert ops.is_tensor(next(iter(pipeline())))
    finally:
        unidl.random.set_deterministic(False)
    reference = results[BACKENDS[0]]
    assert sorted(np.floor(reference).tolist()) == list(range(64))
    for name, got in results.items():
        np.testing.assert_array_equal(got, reference, err_msg=name)


# -- threads ---------------------------------------------------------------------------------
def test_parallel_map_keeps_the_order(no_new_threads):
    delays = random.Random(0)

    def slow_square(v):
        time.sleep(delays.random() * 0.003)  # (scrambles the order workers finish in)
        return v * v

    for calls in (2, 4, AUTOTUNE):
        ds = _range(60).map(slow_square, num_parallel_calls=calls)
        assert values(ds) == [v * v for v in range(60)]


def test_parallel_map_runs_on_several_threads_with_the_consumers_backend(backend,
                                                                         no_new_threads):
    seen = set()

    def record(v):
        seen.add((threading.current_thread().name, unidl.backend_name()))
        time.sleep(0.001)
        return v

    assert values(_range(40).map(record, num_parallel_calls=3)) == list(range(40))
    assert {name for _, name in seen} == {backend}
    assert len({thread for thread, _ in seen}) > 1


def test_map_errors_reach_the_consumer(no_new_threads):
    def fail_at_7(v):
        if v == 7:
            raise KeyError("seven")
        return v

    for calls in (None, 3):
        got = []
        with pytest.raises(KeyError, match="seven"):
            for v in _range(20).map(fail_at_7, num_parallel_calls=calls).as_numpy_iterator():
                got.append(int(v))
        assert got == list(range(7))  # every element before the failing one


def test_prefetch_yields_everything_in_order(no_new_threads):
    ds = _range(100).map(lambda v: v + 1, num_parallel_calls=2).batch(7).prefetch(3)
    assert values(ds) == [list(range(i + 1, min(i + 7, 100) + 1)) for i in range(0, 100, 7)]


def test_prefetch_reraises_pipeline_errors_in_the_consumer(no_new_threads):
    def gen():
        yield from range(5)
        raise RuntimeError("broken record 5")

    ds = Dataset.from_generator(gen).prefetch(2)
    got = []
    with pytest.raises(RuntimeError, match="broken record 5"):
        for v in ds.as_numpy_iterator():
            got.append(int(v))
    assert got == [0, 1, 2, 3, 4]


def test_abandoned_iterations_stop_their_threads():
    before = threading.active_count()
    ds = (_range(10_000).map(lambda v: v * 2, num_parallel_calls=2).prefetch(2).repeat()
          .batch(4).prefetch(2))
    for _batch in ds:  # an infinite pipeline, abandoned after one batch
        break
    del _batch
    assert threading.active_count() == before
    it = iter(ds)
    next(it)
    it.close()
    assert threading.active_count() == before
    with pytest.raises(ZeroDivisionError):
        for _ in _range(10).map(lambda v: 1 // (int(v) - 3)).prefetch(1):
            pass
    assert threading.active_count() == before


# -- cache and cardinality ---------------------------------------------------------------------
def test_cache_fills_on_the_first_full_pass():
    calls = []

    def count(v):
        calls.append(int(v))
        return v

    ds = _range(5).map(count).cache()
    first = next(ds.as_numpy_iterator())  # a partial pass keeps nothing
    assert int(first) == 0 and calls == [0]
    assert values(ds) == list(range(5)) and calls == [0, 0, 1, 2, 3, 4]
    assert values(ds) == list(range(5)) and calls == [0, 0, 1, 2, 3, 4]  # from memory
    rows = Dataset.from_tensor_slices(np.ones((2, 3))).cache()
    values(rows)
    element = next(rows.as_numpy_iterator())
    with pytest.raises(ValueError, match="read-only"):
        element[...] = 2  # (a map below a cache must return new arrays)
    assert next(rows.batch(2).as_numpy_iterator()).tolist() == [[1.0] * 3] * 2
    with pytest.raises(ValueError, match="infinite.*before repeat"):
        _range(3).repeat().cache()


def test_cardinality_follows_tf_data():
    n = _range(10)
    gen = Dataset.from_generator(lambda: iter(range(3)))
    cases = {
        n: 10, n.batch(3): 4, n.batch(3, drop_remainder=True): 3, n.shuffle(4): 10,
        n.map(lambda v: v): 10, n.filter(lambda v: True): UNKNOWN, n.repeat(3): 30,
        n.repeat(): INFINITE, n.take(4): 4, n.take(20): 10, n.skip(4): 6, n.skip(20): 0,
        n.skip(-1): 0, n.take(-1): 10, n.cache(): 10, n.prefetch(2): 10,
        gen: UNKNOWN, gen.repeat(): INFINITE, gen.take(2): UNKNOWN, n.repeat().take(5): 5,
        n.repeat().skip(5): INFINITE, n.repeat().filter(lambda v: True): INFINITE,
        _range(0).repeat(): 0, n.repeat(0): 0,
    }
    for ds, want in cases.items():
        assert ds.cardinality() == want, ds
        if want >= 0:
            assert len(ds) == want == sum(1 for _ in ds.as_numpy_iterator())
    with pytest.raises(TypeError, match="infinite"):
        len(n.repeat())
    with pytest.raises(TypeError, match="unknown"):
        len(gen)


def test_every_public_name_has_a_runnable_example():
    import unidl.data
    from unidl.data import adapters, dataset, parallel, sources, transforms

    for name in unidl.data.__all__:
        obj = getattr(unidl.data, name)
        if isinstance(obj, type):
            assert ">>>" in (obj.__doc__ or ""), name
    for module in (unidl.data, dataset, sources, transforms, parallel, adapters):
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        assert result.failed == 0 and result.attempted > 0, module.__name__


def test_math_of_a_whole_pipeline():
    """One pipeline of every stage against the same computation in plain Python."""
    x = np.arange(30)
    ds = (Dataset.from_tensor_slices((x, x % 4)).filter(lambda a, b: b != 0)
          .map(lambda a, b: (a * 2, b), num_parallel_calls=2).skip(2).take(15)
          .batch(4).repeat(2).prefetch(2))
    kept = [(2 * a, a % 4) for a in range(30) if a % 4 != 0][2:17]
    chunks = [kept[i:i + 4] for i in range(0, len(kept), 4)]
    want = [([a for a, _ in c], [b for _, b in c]) for c in chunks] * 2
    assert [(a, b) for a, b in values(ds)] == want
    assert math.ceil(len(kept) / 4) * 2 == len(want)
