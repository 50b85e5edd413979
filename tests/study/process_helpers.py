"""Helpers for tests that run `medattn` workers as processes and stop them at a marker (worker_hooks/)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

MEDATTN = Path(sys.executable).parent / "medattn"
HOOKS = Path(__file__).parent / "worker_hooks"


def hooked_env(pause: dict | None = None, barrier: dict | None = None) -> dict[str, str]:
    """This environment (one thread per worker) plus the test hooks of worker_hooks/sitecustomize.py."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    for name, settings in (("MEDATTN_TEST_PAUSE", pause), ("MEDATTN_TEST_BARRIER", barrier)):
        if settings:
            Path(settings["dir"]).mkdir(parents=True, exist_ok=True)
            env[name] = ",".join(f"{k}={v}" for k, v in settings.items())
    if pause or barrier:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(HOOKS), os.environ.get("PYTHONPATH", "")) if p)
    return env


def _default_sigint() -> None:
    """In the child: take SIGINT as Ctrl-C even when the test runs with SIGINT ignored (a background job)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@contextlib.contextmanager
def started(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen]:
    """The installed `medattn ARGS` running in its own process group (output to `log`); the group is killed
    on the way out, so a failing test leaves no worker behind."""
    with log.open("w") as out:
        proc = subprocess.Popen([str(MEDATTN), *args], stdout=out, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True, preexec_fn=_default_sigint)
    try:
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def medattn(*args: str, env: dict[str, str] | None = None, timeout: float = 1800) -> subprocess.CompletedProcess:
    """Run the installed `medattn ARGS` to the end."""
    return subprocess.run([str(MEDATTN), *args], capture_output=True, text=True, timeout=timeout,
                          env=env or hooked_env())


def wait_for_marker(folder: Path, proc: subprocess.Popen, log: Path, limit_s: float = 1800) -> Path:
    """The first marker a paused run wrote in `folder`; fails with the log if the process ended first."""
    deadline = time.monotonic() + limit_s  # a guard against hanging, not a timing assertion
    while time.monotonic() < deadline:
        found = sorted(folder.glob("*.marker"))
        if found:
            return found[0]
        if proc.poll() is not None:
            pytest.fail(f"exited {proc.returncode} before the run paused:\n{log.read_text()}")
        time.sleep(0.05)
    proc.kill()
    pytest.fail(f"no run paused within {limit_s:.0f} s:\n{log.read_text()}")


def marker_pid(marker: Path) -> int:
    """The process id of the worker that wrote `marker`."""
    return int(marker.name.split("-")[0])
