"""Elementwise ops: arithmetic, math functions, comparisons, logic.

Each op is declared in one call: signature, dtype rule, reference, gradient rule, samples.
Gradient rules take ``(g, out, *args)`` and return one cotangent per tensor input
(``None`` where there is none); broadcasting is undone by the engine.
"""

from __future__ import annotations

import numpy as np

from unidl import ops
from unidl.spec import samples as S
from unidl.spec.core import COMPOSITE, defop
from unidl.spec.rules import broadcast_rule, same_shape

ALL = ("bool", "uint8", "int8", "int16", "int32", "int64",
       "float16", "bfloat16", "float32", "float64")
NUMERIC = ALL[1:]
FLOATS = ("float16", "bfloat16", "float32", "float64")

# ---- arithmetic -------------------------------------------------------------------------
defop("add", "x, y", tensors="x, y", dtype_rule="same", shape_rule=broadcast_rule,
      reference=np.add, grad=lambda g, out, x, y: (g, g), samples=S.binary(),
      dtypes=NUMERIC, export={"onnx": "Add"}, doc="Elementwise ``x + y`` with broadcasting.")

defop("multiply", "x, y", tensors="x, y", dtype_rule="same", shape_rule=broadcast_rule,
      reference=np.multiply,
      grad=lambda g, out, x, y: (ops.multiply(g, y), ops.multiply(g, x)),
      samples=S.binary(), dtypes=NUMERIC, export={"onnx": "Mul"},
      doc="Elementwise ``x * y`` with broadcasting.")

defop("exp", "x", float_inputs=True, shape_rule=same_shape, reference=np.exp,
      grad=lambda g, out, x: (ops.multiply(g, out),), samples=S.unary(-5, 5),
      dtypes=FLOATS, export={"onnx": "Exp"}, doc="Elementwise ``e ** x``.")
