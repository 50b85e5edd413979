"""Provenance of a run: which medattn (version, commit), which libraries and which machine produced it.

Recorded in study.json and every model.json (the run-directory contract, :mod:`medattn.rundir`), following
Sandve et al., "Ten Simple Rules for Reproducible Computational Research" (PLoS Comput Biol 2013), rules 3 and 4:
archive the exact versions of all programs used, and record the version of your own code.

- The version comes from git through setuptools-scm when medattn is installed (pyproject.toml,
  ``[tool.setuptools_scm]``): ``0.1.1.dev151+gafe30d3bf`` is the 151st commit after 0.1.0 (no release is tagged
  yet), commit afe30d3bf, with ``.dYYYYMMDD`` appended when the working tree had uncommitted changes.
- An editable install keeps the version of the moment it was installed, so the commit is read from git at run
  time when medattn runs from its own checkout (``git rev-parse HEAD``, a few milliseconds; no lock is taken, so
  it is safe beside a running ``git commit``), and otherwise from the version's ``+gHASH`` part. Without either
  (a source archive) the commit is None.
- Library versions come from the installed packages' metadata (:mod:`importlib.metadata`): nothing is imported.
- The hardware block describes the machine; the per-run choices (precision, memory format, stem, threads)
  are in each run's metrics.json. Its bf16 feature detection is :func:`medattn.runtime.precision.cpu_bf16_features`.
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
LIBRARIES = ("torch", "timm", "optuna", "numpy")
GIT_TIMEOUT_S = 5.0
_SCM_HASH = re.compile(r"\+(?:.*\.)?g([0-9a-f]{7,40})(?:\.|$)")


def package_version(name: str) -> str | None:
    """Return the installed version of distribution `name`, or None when it is not installed."""
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def _git(*args: str) -> str | None:
    """Return git's stripped stdout for `args` run in medattn's source folder, or None if git fails."""
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C"}
    try:
        done = subprocess.run(["git", *args], cwd=PACKAGE_DIR, capture_output=True, text=True,
                              timeout=GIT_TIMEOUT_S, env=env, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def _own_checkout() -> bool:
    """Return whether medattn's source folder is `src/medattn` of a git work tree (not a venv inside another repo)."""
    top = _git("rev-parse", "--show-toplevel")
    return top is not None and (Path(top) / "src" / "medattn").resolve() == PACKAGE_DIR


def commit_from_version(medattn_version: str | None) -> str | None:
    """Return the abbreviated commit hash in a setuptools-scm version's local part (`+gHASH`), or None."""
    found = _SCM_HASH.search(medattn_version or "")
    return found.group(1) if found else None


@lru_cache(maxsize=1)
def source() -> dict:
    """Return medattn's version, commit, whether the checkout had uncommitted changes, and the commit's origin."""
    medattn_version = package_version("medattn")
    if _own_checkout():
        commit = _git("rev-parse", "HEAD")
        changes = _git("status", "--porcelain", "--untracked-files=no")
        return {"version": medattn_version, "commit": commit, "dirty": None if changes is None else bool(changes),
                "commit_from": "git"}
    commit = commit_from_version(medattn_version)
    return {"version": medattn_version, "commit": commit, "dirty": None,
            "commit_from": "version" if commit else None}


def libraries() -> dict[str, str | None]:
    """Return the Python version and the installed versions of the libraries a result depends on (None if absent)."""
    return {"python": platform.python_version(), **{name: package_version(name) for name in LIBRARIES}}


def _cpu_model(path: Path = Path("/proc/cpuinfo")) -> str:
    """Return the CPU's model name from /proc/cpuinfo, else platform.processor() (may be empty)."""
    try:
        for line in path.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def hardware() -> dict:
    """Return the machine: OS, CPU model, cores (all and usable), fast-bf16 CPU features, CUDA devices and build."""
    import torch  # imported only when the hardware is asked for (the writers have it loaded already)

    from medattn.runtime.precision import cpu_bf16_features

    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cuda = ([torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
            if torch.cuda.is_available() else [])
    return {"platform": platform.platform(), "machine": platform.machine(), "cpu": _cpu_model(),
            "cores": os.cpu_count(), "usable_cores": usable, "cpu_bf16": list(cpu_bf16_features()), "cuda": cuda,
            "torch_cuda": torch.version.cuda}


def provenance(with_hardware: bool = True) -> dict:
    """Return what produced a result: medattn version and commit, library versions and (optionally) hardware."""
    record = {"medattn": dict(source()), "libraries": libraries()}
    if with_hardware:
        record["hardware"] = hardware()
    return record
