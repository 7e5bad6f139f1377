"""The device dimension of the conformance suite, tested without a GPU.

TensorFlow splits the host CPU into logical devices (``UNIDL_TF_LOGICAL_CPUS=N``, read when
the backend loads), so the suite can run a backend over two devices on any machine; and a
fake backend shows that a device's results are compared with the same backend's ``cpu``.
"""

from __future__ import annotations

import json

import pytest

import unidl
from tests.conftest import BACKENDS, run_python
from unidl_conformance.runner import run

_TF_DEVICES = """
    import json, sys
    import unidl
    from unidl import ops
    from unidl.cli import main

    rc = main(["conformance", "--no-progress", "--backend", "tensorflow",
               "-k", "add,matmul,conv2d", "--check", "forward", "--dtype", "float32,float64",
               "--report", sys.argv[1]])
    placed = {}
    with unidl.use_backend("tensorflow") as be:
        for dev in be.devices():
            with unidl.device(dev):
                x = ops.ones((2, 3))
                y = ops.matmul(x, ops.convert_to_tensor([[1.0], [2.0], [3.0]]))
                z = ops.conv2d(ops.ones((1, 4, 4, 1)), ops.ones((3, 3, 1, 1)), 1, "same")
                placed[dev] = [be.device_of(t) for t in (x, y, z)] + [unidl.current_device()]
        moved = be.device_of(be.to_device(ops.ones((2,)), "cpu:1"))
    print("RESULT", json.dumps({"rc": rc, "devices": be.devices(), "placed": placed,
                                "moved": moved}))
"""


@pytest.mark.skipif("tensorflow" not in BACKENDS, reason="tensorflow is not installed")
def test_tensorflow_logical_cpus_are_checked_as_devices(tmp_path):
    report = tmp_path / "report.json"
    code = _TF_DEVICES.replace("sys.argv[1]", repr(str(report)))
    proc = run_python(code, env={"UNIDL_TF_LOGICAL_CPUS": "2"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT "))
    got = json.loads(line[len("RESULT "):])
    assert got["rc"] == 0, proc.stdout[-3000:]
    assert got["devices"] == ["cpu", "cpu:1"]
    # tensors made (and results computed) inside unidl.device(dev) live on dev
    assert got["placed"] == {"cpu": ["cpu"] * 4, "cpu:1": ["cpu:1"] * 4}
    assert got["moved"] == "cpu:1"

    data = json.loads(report.read_text())
    assert data["ran"]["devices"] == ["tensorflow/cpu", "tensorflow/cpu:1"]
    assert data["backends"]["tensorflow"]["devices"] == ["cpu", "cpu:1"]
    by_device = {}
    for r in data["results"]:
        by_device.setdefault(r["device"], set()).add((r["case"], r["dtype"]))
        assert r["status"] == "pass", r
    assert by_device["cpu"] == by_device["cpu:1"]
    assert {("add", "float32"), ("matmul", "float64"), ("conv2d", "float32")} <= \
        by_device["cpu:1"]


_TWO_DEVICES = """
import numpy as np

import unidl
from unidl.backend import BackendEntry
from unidl.hookspecs import hookimpl


def _load():
    from unidl_numpy.backend import NumpyBackend

    class TwoDevices(NumpyBackend):
        name = "twodevices"

        def devices(self):
            return ["cpu", "cpu:1"]

        def device_of(self, x):
            return unidl.current_device()  # a fake: arrays carry no device

        def __init__(self):
            super().__init__()

            def add(a, b):
                # within the float64 tolerance of the reference on each device, but the two
                # devices disagree by more than it
                r = np.add(a, b)
                sign = 1.0 if unidl.current_device() == "cpu:1" else -1.0
                shift = np.where(np.isfinite(r), 0.6 * (1e-7 + 1e-7 * np.abs(r)), 0.0)
                return r + sign * shift

            self.kernels["add"] = add

    return TwoDevices()


@hookimpl
def unidl_register_backends():
    return [BackendEntry(name="twodevices", load=_load)]
"""


def test_device_results_are_compared_with_the_backends_cpu(installed):
    installed("unidl-twodevices", {"twodevices": "unidl_twodevices_plugin"},
              modules={"unidl_twodevices_plugin.py": _TWO_DEVICES})
    assert unidl.devices("twodevices") == ["cpu", "cpu:1"]
    result = run(backends=["twodevices"], checks=["forward"], dtypes=["float64"],
                 pattern="[a]dd,subtract", progress=False)
    status = {(r.case.target, r.case.device): r.status for r in result.results}
    assert status == {("add", "cpu"): "pass", ("add", "cpu:1"): "fail",
                      ("subtract", "cpu"): "pass", ("subtract", "cpu:1"): "pass"}
    (bad,) = result.failed
    assert "on twodevices/cpu:1 differs from twodevices/cpu" in bad.message, bad.message
