"""The bound kernel table: argument preparation stays bounded and fast paths agree with the
generic path."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import unidl
from unidl import dtypes as _dt
from unidl import ops
from unidl.spec import all_specs


def _dtype_arg_ops():
    return [s for s in all_specs() if "dtype" in s.param_names and s.tensor_pos == (0,)
            and not s.tensor_list_pos]


def test_result_dtype_cache_stays_bounded(backend):
    x = ops.ones((3,))
    for i in range(2000):
        ops.full_like(x, float(i))
        ops.full_like(x, i, "int32")
    cache = unidl.current_backend().table.full_like.result_dtypes
    assert 0 < len(cache) <= 4, cache


@pytest.mark.parametrize("spec", _dtype_arg_ops(), ids=lambda s: s.name)
def test_dtype_rules_read_only_the_input_dtype_and_the_dtype_argument(spec):
    """What lets the bound table cache their result dtype per (input dtype, dtype)."""
    others = [i for i in range(len(spec.param_names))
              if i not in spec.tensor_pos and spec.param_names[i] != "dtype"]
    dpos = spec.param_names.index("dtype")
    variants = []
    for smp in spec.samples("float32", np.random.default_rng(0)):
        variants.append(tuple(smp.args[i] for i in others))
    assert variants, spec.name
    for dt, want in itertools.product(("float32", "int32", "bool"), (None, "float64", "int8")):
        got = set()
        for v in variants:
            args = [None] * len(spec.param_names)
            args[0], args[dpos] = dt, want
            for i, value in zip(others, v):
                args[i] = value
            got.add(spec.result_dtype(args))
        assert len(got) == 1, (spec.name, dt, want, got)


def test_fast_and_generic_paths_give_the_same_dtypes(backend):
    x = ops.ones((2,), "float16")
    for value, want in ((1.0, "float16"), (2, "float16"), (np.float32(1), "float32")):
        assert ops.dtype(ops.add(x, value)) == want
    ints = ops.ones((2,), "int8")
    assert ops.dtype(ops.add(ints, 3)) == "int8"
    assert ops.dtype(ops.add(ints, 1.5)) == _dt.DEFAULT_FLOAT
