"""Set up and run unidl's jobs from a fresh clone, with nothing but Python 3.10+.

    python3 dev.py conformance [ARGS]   the main job: every installed backend, full run, and a
                                        report (report.html unless ARGS has --report)
    python3 dev.py test [ARGS]          the tests (python -m pytest -q -n 2, or pytest ARGS)
    python3 dev.py setup                only the set-up
    python3 dev.py ci [--no-setup] [--steps a,b] [-- CONFORMANCE ARGS]
                                        what CI runs (.ci/run): set-up, backends, lint, the
                                        main job and the tests; fails if any step fails

Set-up makes ``.venv`` (when it is missing or was made from another pyproject.toml) with the
pinned CPU build of PyTorch first (an unpinned torch pulls a multi-GB CUDA build), then unidl
with every backend and the dev tools. ``--no-setup`` (or ``UNIDL_DEV_NO_SETUP=1``) runs with
this interpreter instead: whatever it has installed.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
#: the CPU build of PyTorch this project pins (the wheel on the build machines)
TORCH = os.environ.get("UNIDL_TORCH", "torch==2.13.0")
STAMP = VENV / ".unidl-setup"
#: the JAX backend: its own distribution (unidl-jax), installed like any third-party backend
JAX_PLUGIN = "plugins/unidl_jax"
CI_STEPS = ("setup", "backends", "lint", "conformance", "tests")


def venv_python() -> Path:
    return VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _setup_key() -> str:
    text = (ROOT / "pyproject.toml").read_bytes() + TORCH.encode() + sys.version.encode()
    text += (ROOT / JAX_PLUGIN / "pyproject.toml").read_bytes()
    return hashlib.sha256(text).hexdigest()


def _run(cmd, **kwargs) -> int:
    print("+ " + " ".join(str(c) for c in cmd), flush=True)
    return subprocess.call([str(c) for c in cmd], cwd=ROOT, **kwargs)


def setup() -> Path:
    """``.venv`` with every backend, made or refreshed only when needed; its python."""
    python = venv_python()
    if python.exists() and STAMP.exists() and STAMP.read_text() == _setup_key():
        return python
    if not python.exists():
        if _run([sys.executable, "-m", "venv", VENV]) != 0:
            sys.exit("dev.py: could not create .venv (on Debian/Ubuntu: apt install "
                     "python3-venv)")
    env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1")
    for args in (["-q", TORCH], ["-q", "-e", ".[all,dev]"], ["-q", "-e", f"./{JAX_PLUGIN}"]):
        if _run([python, "-m", "pip", "install", *args], env=env) != 0:
            sys.exit(f"dev.py: pip install {' '.join(args[1:])} failed (see above)")
    STAMP.write_text(_setup_key())
    return python


def interpreter(no_setup: bool) -> Path:
    if no_setup or os.environ.get("UNIDL_DEV_NO_SETUP") == "1":
        return Path(sys.executable)
    return setup()


def conformance(python: Path, args: list[str]) -> int:
    """The main job: ``unidl conformance`` over every installed backend, full run."""
    if not any(a == "--report" or a.startswith("--report=") for a in args):
        args = [*args, "--report", "report.html"]
    return _run([python, "-m", "unidl", "conformance", "--no-progress", *args])


#: the backends whose conformance cases also run under pytest in ``dev.py test`` (the bundled
#: ones); the main job checks every installed backend, JAX included (its eager cases compile
#: each op with XLA first: a full JAX run takes many minutes, once, in the main job)
TEST_CONFORMANCE_BACKENDS = "numpy,torch,tensorflow"


def tests(python: Path, args: list[str]) -> int:
    env = dict(os.environ)
    env.setdefault("UNIDL_CONFORMANCE_BACKENDS", TEST_CONFORMANCE_BACKENDS)
    return _run([python, "-m", "pytest", *(args or ["-q", "-n", "2"])], env=env)


def lint(python: Path) -> int:
    return _run([python, "-m", "ruff", "check", "unidl", "plugins", "conformance", "tests",
                 "examples", "benchmarks", "dev.py"])


def backends(python: Path) -> int:
    code = "import sys, unidl; print('unidl', unidl.__version__, 'python', sys.version.split()[0])"
    return _run([python, "-c", code]) or _run([python, "-m", "unidl", "backends"])


def ci(argv: list[str]) -> int:
    """Every CI step in order (each runs even if an earlier one failed); 1 if any failed."""
    no_setup, steps, extra = _ci_options(argv)
    python = interpreter(no_setup)
    jobs = {"setup": lambda: 0, "backends": lambda: backends(python),
            "lint": lambda: lint(python), "tests": lambda: tests(python, []),
            "conformance": lambda: conformance(python, extra or [
                "--report", "reports/conformance.html", "--report", "reports/conformance.json"])}
    (ROOT / "reports").mkdir(exist_ok=True)
    failed = [step for step in steps if jobs[step]() != 0]
    print(f"dev.py ci: {', '.join(steps)}: " + (f"FAILED {', '.join(failed)}" if failed
                                                 else "all passed"), flush=True)
    return 1 if failed else 0


def _ci_options(argv):
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    own = argv[:argv.index("--")] if "--" in argv else argv
    steps = list(CI_STEPS)
    if "--steps" in own:
        steps = own[own.index("--steps") + 1].split(",")
        unknown = set(steps) - set(CI_STEPS)
        if unknown:
            sys.exit(f"dev.py ci: unknown steps {sorted(unknown)}; steps are {CI_STEPS}")
    return "--no-setup" in own, steps, extra


def main(argv: list[str]) -> int:
    if sys.version_info < (3, 10):  # noqa: UP036  (dev.py is run by any python3)
        sys.exit(f"dev.py: unidl needs Python 3.10 or newer; this is {sys.version.split()[0]}")
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command == "setup":
        print(f"ready: {setup()}")
        return 0
    if command == "ci":
        return ci(rest)
    no_setup = "--no-setup" in rest
    rest = [a for a in rest if a != "--no-setup"]
    if command == "conformance":
        return conformance(interpreter(no_setup), rest)
    if command == "test":
        return tests(interpreter(no_setup), rest)
    print(f"dev.py: unknown command {command!r}\n{__doc__}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
