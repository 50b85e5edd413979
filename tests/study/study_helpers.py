"""Helpers for study tests: tiny real datasets, spec files, a fast fake training function."""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import yaml

from medattn.train.loop import RunResult


def make_tiny_npz(path: Path, shared_data: Path, n_train: int = 160, n_val: int = 64, n_test: int = 64,
                  seed: int = 0) -> Path:
    """A class-balanced random subset of the real PneumoniaMNIST (28 px) in `shared_data`, in the MedMNIST layout."""
    src = np.load(shared_data / "medmnist" / "pneumoniamnist.npz")
    rng = np.random.default_rng(seed)
    out = {}
    for split, n in (("train", n_train), ("val", n_val), ("test", n_test)):
        labels = src[f"{split}_labels"].reshape(-1)
        idx = np.concatenate([rng.choice(np.flatnonzero(labels == c), n // 2, replace=False) for c in (0, 1)])
        out[f"{split}_images"] = src[f"{split}_images"][idx]
        out[f"{split}_labels"] = src[f"{split}_labels"][idx]
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **out)
    return path


def spec_dict(data_spec: str, out: Path, **overrides) -> dict:
    """A small but complete study spec (plain ResNet-18 vs SE), overridable per test."""
    spec = {
        "name": "t",
        "datasets": [{"spec": data_spec, "name": "pneu"}],
        "models": {"grid": {"backbones": ["resnet18"], "attentions": ["se"], "small_stem": False}},
        "train": {"epochs": 2, "batch_size": 32, "warmup_epochs": 0},
        "tuning": {"trials": 2, "max_epochs": 2, "sampler": "random",
                   "pruner": {"type": "median", "startup_trials": 1, "warmup_epochs": 0},
                   "search_space": {"lr": {"low": 1e-3, "high": 1e-2, "log": True}}},
        "seeds": 2,
        "cost": False,
        "workers": {"heartbeat_interval": 1, "grace_period": 3, "poll_interval": 0.2},
        "output": str(out),
    }
    for key, value in overrides.items():
        spec[key] = value
    return spec


def write_spec(path: Path, spec: dict) -> Path:
    """Write a spec dict as YAML."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


class FakeTrain:
    """A deterministic stand-in for train_run: score peaks at lr = 1e-2.5, records every call."""

    def __init__(self) -> None:
        self.calls: list[dict] = []

    def __call__(self, data, model, train, seed, out_dir, on_epoch=None) -> RunResult:
        self.calls.append({"model": model.attention, "lr": train.lr, "seed": seed, "out_dir": out_dir,
                           "epochs": train.epochs, "splits": sorted(set(data.split.tolist()))})
        score = 0.0
        for epoch in range(1, train.epochs + 1):
            score = 0.5 + 0.1 * epoch * (1 - abs(math.log10(train.lr) + 2.5)) + 0.001 * seed
            if on_epoch is not None:
                on_epoch(epoch, {"balanced_accuracy": score, "auc": score})
        artifacts = {}
        if out_dir is not None:
            out_dir.mkdir(parents=True, exist_ok=True)
            (out_dir / "model.safetensors").write_text("weights")
            (out_dir / "predictions_test.csv").write_text("index,label\n")
            artifacts = {"checkpoint": str(out_dir / "model.safetensors"),
                         "predictions_test": str(out_dir / "predictions_test.csv")}
        splits = [s for s in dict.fromkeys(data.split.tolist()) if s != "train"]
        metrics = {s: {"balanced_accuracy": score, "auc": score} for s in splits}
        return RunResult("ok", train.epochs, train.epochs, metrics, [], {"train_seconds": 0.01}, artifacts)


def postgres_binaries() -> Path:
    """Directory holding initdb and pg_ctl; fails the test with the fix when PostgreSQL is not installed."""
    found = shutil.which("initdb") and shutil.which("pg_ctl")
    if found:
        return Path(shutil.which("initdb")).resolve().parent
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), reverse=True)
    if candidates:
        return candidates[0].parent
    pytest.fail("PostgreSQL server binaries (initdb, pg_ctl) not found: run `make venv` (it installs the "
                "Debian package postgresql) or `apt-get install -y postgresql`")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """Start a private PostgreSQL cluster (as user postgres when root) and yield a URL to an empty database."""
    bindir = postgres_binaries()
    root = Path(tempfile.mkdtemp(prefix="medattn-pg-"))
    as_root = os.geteuid() == 0
    prefix = ["runuser", "-u", "postgres", "--"] if as_root else []
    if as_root:
        shutil.chown(root, "postgres", "postgres")
    data, port = root / "data", _free_port()

    def run(*cmd: str) -> None:
        done = subprocess.run([*prefix, *cmd], capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            pytest.fail(f"{' '.join(cmd)} failed ({done.returncode}): {done.stdout}{done.stderr}"
                        f"{(root / 'log').read_text() if (root / 'log').exists() else ''}")

    run(str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
    run(str(bindir / "pg_ctl"), "-D", str(data), "-l", str(root / "log"), "-w", "-t", "60", "-o",
        f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=50", "start")
    try:
        import psycopg2

        conn = psycopg2.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres")
        conn.autocommit = True
        conn.cursor().execute("CREATE DATABASE medattn")
        conn.close()
        yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/medattn"
    finally:
        subprocess.run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                       capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)
