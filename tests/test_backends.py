"""Backend discovery, selection, laziness and plugin failure handling."""

from __future__ import annotations

import threading
import warnings

import numpy as np
import pytest

import unidl
from tests.conftest import BACKENDS, ROOT, run_python
from unidl import ops
from unidl.backend import registry

NATIVE = {"numpy": "np.ndarray", "torch": "torch.Tensor", "tensorflow": "tf.Tensor"}
IMPORT = {"numpy": "import numpy as np", "torch": "import torch",
          "tensorflow": "import tensorflow as tf"}


@pytest.mark.parametrize("name", BACKENDS)
def test_env_var_selects_backend_and_ops_return_native_tensors(name):
    code = f"""
        import unidl
        {IMPORT[name]}
        from unidl import ops
        assert unidl.backend_name() == {name!r}
        assert isinstance(ops.relu(ops.ones((2, 3))), {NATIVE[name]})
        print("ok")
    """
    proc = run_python(code, env={"UNIDL_BACKEND": name})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "ok" in proc.stdout


def test_import_is_lazy():
    proc = run_python("""
        import sys
        import unidl
        from unidl import ops
        ops.add(ops.ones((2,)), 1.0)
        unidl.list_backends(load=False)
        heavy = [m for m in ("torch", "tensorflow", "jax") if m in sys.modules]
        print("HEAVY", heavy)
    """, env={"UNIDL_BACKEND": "numpy"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "HEAVY []" in proc.stdout


def test_default_backend_is_numpy():
    proc = run_python("import unidl; print(unidl.backend_name())", env={"UNIDL_BACKEND": ""})
    assert proc.stdout.strip() == "numpy", proc.stderr


def test_unknown_backend_lists_installed():
    with pytest.raises(ValueError) as err:
        unidl.set_backend("nonexistent")
    assert "nonexistent" in str(err.value) and "numpy" in str(err.value)


def test_use_backend_nests_and_restores():
    before = unidl.backend_name()
    with unidl.use_backend("numpy"):
        assert unidl.backend_name() == "numpy"
        if "torch" in BACKENDS:
            with unidl.use_backend("torch"):
                assert unidl.backend_name() == "torch"
            assert unidl.backend_name() == "numpy"
    assert unidl.backend_name() == before


@pytest.mark.skipif("torch" not in BACKENDS, reason="torch is not installed")
def test_use_backend_is_per_thread():
    seen = {}

    def worker():
        seen["thread"] = unidl.backend_name()

    with unidl.use_backend("torch"):
        t = threading.Thread(target=worker)
        t.start()
        t.join()
        assert unidl.backend_name() == "torch"
    assert seen["thread"] != "torch" or unidl.backend_name() == "torch"


def test_list_backends_reports_versions_and_devices():
    rows = {b.name: b for b in unidl.list_backends()}
    for name in BACKENDS:
        assert rows[name].version
        assert "cpu" in rows[name].devices


def test_devices_and_device_scope(backend):
    assert "cpu" in unidl.devices()
    with unidl.device("cpu"):
        assert unidl.current_device() == "cpu"
        x = ops.ones((2,))
    assert ops.to_numpy(x).tolist() == [1.0, 1.0]
    with pytest.raises(unidl.BackendError, match="not available"):
        with unidl.device("cuda:7"):
            pass


def test_unidl_device_follows_set_backend_and_lazy_loading():
    """``UNIDL_DEVICE`` places tensors after ``set_backend`` as after lazy loading (it used
    to be dropped by ``set_backend``: a script calling it ran on the CPU)."""
    code = """
        import unidl
        from unidl.backend import registry
        be = registry.get_backend("numpy")
        type(be).devices = lambda self: ["cpu", "cuda:0"]  # (a backend with a GPU)
        assert unidl.current_device() == "cuda:0"  # (lazy: UNIDL_BACKEND)
        unidl.set_backend("numpy")
        assert unidl.current_device() == "cuda:0", unidl.current_device()
        with unidl.device("cpu"):
            assert unidl.current_device() == "cpu"
        print("ok")
    """
    proc = run_python(code, env={"UNIDL_BACKEND": "numpy", "UNIDL_DEVICE": "GPU"})
    assert proc.returncode == 0 and "ok" in proc.stdout, proc.stderr[-2000:]


@pytest.mark.parametrize("how", ["lazy", "set_backend"])
def test_unidl_device_the_backend_lacks_is_a_clear_error(how):
    call = "unidl.current_device()" if how == "lazy" else "unidl.set_backend('numpy')"
    code = f"""
        import unidl
        try:
            {call}
        except unidl.BackendError as exc:
            print("error:", exc)
    """
    proc = run_python(code, env={"UNIDL_BACKEND": "numpy", "UNIDL_DEVICE": "cuda:7"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "error: UNIDL_DEVICE='cuda:7': device 'cuda:7' is not available on backend " \
        "'numpy'; it has cpu" in proc.stdout, proc.stdout


def test_cli_backends_table():
    proc = run_python("from unidl.cli import main; main(['backends'])")
    assert proc.returncode == 0, proc.stderr[-2000:]
    for name in BACKENDS:
        assert name in proc.stdout
    assert "version" in proc.stdout and "devices" in proc.stdout


# -- third-party and broken plugins, installed through entry points ---------------------------
EXAMPLE = ROOT / "examples" / "third_party_backend" / "unidl_example_backend"


def test_third_party_backend_is_discovered_and_conforms(installed):
    installed("unidl-example-backend", {"example": "unidl_example_backend.plugin"},
              copy_packages=[EXAMPLE])
    names = [b.name for b in unidl.list_backends()]
    assert "example" in names
    with unidl.use_backend("example"):
        assert isinstance(ops.add(ops.ones((2,)), 1.0), np.ndarray)
    from unidl_conformance.runner import run

    result = run(backends=["example"], checks=["forward"], dtypes=["float32", "float64"],
                 progress=False)
    assert len(result.results) > 0
    assert not result.failed, [r.message for r in result.failed][:5]


def test_third_party_backend_in_cli_table(tmp_path):
    from tests.conftest import make_dist

    site = make_dist(tmp_path, "unidl-example-backend",
                     {"example": "unidl_example_backend.plugin"}, copy_packages=[EXAMPLE])
    proc = run_python("from unidl.cli import main; main(['backends'])", path=[str(site)])
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "example" in proc.stdout and "0.1.0" in proc.stdout


def test_broken_plugin_is_reported_and_others_work(installed):
    installed("broken-backend", {"broken": "unidl_broken_plugin"},
              modules={"unidl_broken_plugin.py": "raise ImportError('no such library: libfoo')"})
    rows = {b.name: b for b in unidl.list_backends()}
    assert "broken" in rows and "libfoo" in rows["broken"].error
    assert rows["numpy"].error is None
    with unidl.use_backend("numpy"):
        assert ops.to_numpy(ops.add(1.0, 2.0)) == 3.0


def test_backend_whose_framework_is_missing_names_the_extra(installed):
    installed("needs-framework", {"needy": "unidl_needy_plugin"}, modules={
        "unidl_needy_plugin.py": """
            from unidl.backend import BackendEntry
            from unidl.hookspecs import hookimpl

            def _load():
                import not_a_real_framework_xyz  # noqa: F401

            @hookimpl
            def unidl_register_backends():
                return [BackendEntry(name="needy", load=_load, extra="needy")]
        """})
    with pytest.raises(ImportError) as err:
        unidl.set_backend("needy")
    assert 'pip install "unidl[needy]"' in str(err.value)
    rows = {b.name: b for b in unidl.list_backends()}
    assert rows["needy"].error and rows["numpy"].error is None


def test_missing_primitives_are_reported(installed):
    installed("partial-backend", {"partial": "unidl_partial_plugin"}, modules={
        "unidl_partial_plugin.py": """
            from unidl.backend import BackendEntry
            from unidl.hookspecs import hookimpl

            def _load():
                from unidl_numpy.backend import NumpyBackend
                be = NumpyBackend()
                del be.kernels["add"]
                return be

            @hookimpl
            def unidl_register_backends():
                return [BackendEntry(name="partial", load=_load)]
        """})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        be = registry.get_backend("partial")
    assert "add" in be.missing
    assert any("add" in str(w.message) for w in caught)
    with unidl.use_backend("partial"):
        with pytest.raises(NotImplementedError, match="add"):
            ops.add(ops.ones((2,)), 1.0)


def test_import_unidl_loads_only_backend_selection():
    """Every other public name loads on first use (what keeps ``import unidl`` about as
    fast as NumPy alone; benchmarks/run.py times it)."""
    proc = run_python("""
        import sys
        import unidl
        loaded = sorted(m for m in sys.modules if m.startswith("unidl"))
        print("LOADED", loaded)
        assert unidl.ops.ones((2,)).shape == (2,) and unidl.Model.__name__ == "Model"
        assert "grad" in dir(unidl)
    """, env={"UNIDL_BACKEND": "numpy"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("LOADED"))
    assert "unidl.ops" not in line and "unidl.layers" not in line and "unidl.spec" not in line
