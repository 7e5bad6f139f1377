"""NumPy elementwise kernels."""

import numpy as np

KERNELS = {
    "add": np.add,
    "multiply": np.multiply,
    "exp": np.exp,
}
