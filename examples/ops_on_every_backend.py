"""The same unidl.ops code on every installed backend (NumPy, PyTorch, TensorFlow, JAX...).

Run:  python examples/ops_on_every_backend.py
(or select one backend for a whole program: UNIDL_BACKEND=torch python my_program.py)
"""

import unidl
from unidl import ops


def layer_norm_relu(x):
    """Written once with unidl.ops; runs on any backend."""
    return ops.relu(ops.layer_norm(ops.matmul(x, ops.ones((3, 4))), axis=-1))


for row in unidl.list_backends():
    if row.error is not None:
        print(f"{row.name:<11} not available: {row.error}")
        continue
    with unidl.use_backend(row.name):
        x = ops.convert_to_tensor([[1.0, 2.0, 3.0], [4.0, -5.0, 6.0]])
        y = layer_norm_relu(x)
        print(f"{row.name:<11} {type(y).__module__}.{type(y).__name__:<12} "
              f"{ops.dtype(y)} {ops.shape(y)} sum={float(ops.to_numpy(ops.sum(y))):.5f}")
        try:
            ops.matmul(ops.ones((2, 3)), ops.ones((4, 5)))
        except unidl.OpError as err:
            print(f"{'':<11} error: {err}")
