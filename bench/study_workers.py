"""Benchmark study workers: wall time of the same study with 1 worker (the reference) and with N workers.

A small real study (a class-balanced PneumoniaMNIST 28 px subset from ../shared/data, plain ResNet-18 vs
ResNet-18+SE, 2 tuning trials and 3 seeds each, one CPU thread per worker) runs once per arm through the
installed `medattn study run`, on a journal file (default) or the PostgreSQL URL given with --storage. The
speed-up is reported next to this machine's parallel capacity, measured in the same run: the work two busy
processes do relative to one in the same time (2.0 on two idle cores); a speed-up needs free cores.
Target: 2 workers >= 1.25x faster than 1 when the capacity is >= 1.8.

    python bench/study_workers.py                        # 1 vs 2 workers, 320 train images: ~2 min on 2 CPUs
    python bench/study_workers.py --workers 1 2 4 --train-images 640
    python bench/study_workers.py --storage postgresql+psycopg2://user@host/db

Prints a table and writes JSON to bench/results/study_workers.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=None,
                   help="pneumoniamnist.npz (default: $MEDATTN_SHARED_DATA or ../shared/data, medmnist/)")
    p.add_argument("--train-images", type=int, default=320, help="class-balanced training subset")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="arms; the first is the reference")
    p.add_argument("--storage", default=None, help="database URL (one fresh study per arm); default journal")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "study_workers.json")
    return p.parse_args(argv)


def data_file(args: argparse.Namespace) -> Path:
    """The PneumoniaMNIST npz to sample from."""
    if args.data:
        return args.data
    root = Path(os.environ.get("MEDATTN_SHARED_DATA") or ROOT.parent / "shared" / "data")
    return root / "medmnist" / "pneumoniamnist.npz"


def tiny_npz(src: Path, dest: Path, n_train: int, n_eval: int = 64) -> Path:
    """A class-balanced subset of a MedMNIST npz (same layout), seeded."""
    data, rng, out = np.load(src), np.random.default_rng(0), {}
    for split, n in (("train", n_train), ("val", n_eval), ("test", n_eval)):
        labels = data[f"{split}_labels"].reshape(-1)
        idx = np.concatenate([rng.choice(np.flatnonzero(labels == c), n // 2, replace=False) for c in (0, 1)])
        out[f"{split}_images"], out[f"{split}_labels"] = data[f"{split}_images"][idx], data[f"{split}_labels"][idx]
    np.savez(dest, **out)
    return dest


def study_spec(npz: Path, out: Path, name: str, epochs: int, storage: str | None) -> dict:
    """The benchmark study: 2 models x (2 tuning trials + 3 seeds)."""
    spec = {"name": name, "datasets": [{"spec": f"medmnist:{npz}", "name": "pneu"}],
            "models": {"grid": {"backbones": ["resnet18"], "attentions": ["se"], "small_stem": False}},
            "train": {"epochs": epochs, "batch_size": 32, "warmup_epochs": 0},
            "tuning": {"trials": 2, "max_epochs": epochs, "sampler": "random", "pruner": "none",
                       "search_space": {"lr": {"low": 1e-3, "high": 1e-2, "log": True}}},
            "seeds": 3, "cost": False, "output": str(out),
            "workers": {"heartbeat_interval": 1, "grace_period": 10, "poll_interval": 0.2}}
    if storage:
        spec["storage"] = storage
    return spec


def timed_study(spec: dict, folder: Path, workers: int) -> float:
    """Seconds `medattn study run --workers N` takes on `spec`."""
    path = folder / f"{spec['name']}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    medattn = Path(sys.executable).parent / "medattn"
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    start = time.perf_counter()
    done = subprocess.run([str(medattn), "study", "run", str(path), "--workers", str(workers), "--threads", "1"],
                          capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"study with {workers} worker(s) failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    return seconds


def _spin(seconds: float) -> int:
    end, n = time.perf_counter() + seconds, 0
    while time.perf_counter() < end:
        n += 1
    return n


def parallel_capacity(seconds: float = 2.0) -> float:
    """Work done by two busy processes relative to one in the same time (2.0 on two idle cores)."""
    with ProcessPoolExecutor(2) as pool:
        one = pool.submit(_spin, seconds).result()
        two = sum(f.result() for f in [pool.submit(_spin, seconds) for _ in range(2)])
    return two / one


def main(argv: list[str] | None = None) -> dict:
    """Run every arm, print the table, write the JSON; return the results."""
    args = parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-workers-") as tmp:
        folder = Path(tmp)
        npz = tiny_npz(data_file(args), folder / "pneu.npz", args.train_images)
        capacity_before = parallel_capacity()
        for workers in args.workers:
            name = f"bench-workers-{workers}-{os.getpid()}"
            seconds = timed_study(study_spec(npz, folder / name, name, args.epochs, args.storage), folder, workers)
            rows.append({"workers": workers, "seconds": seconds})
        capacity_after = parallel_capacity()
    reference = rows[0]["seconds"]
    for row in rows:
        row["speedup_vs_reference"] = reference / row["seconds"]
    result = {"reference": f"{args.workers[0]} worker(s)", "storage": args.storage or "journal",
              "train_images": args.train_images, "epochs": args.epochs, "runs_per_arm": 10,
              "parallel_capacity_before": capacity_before, "parallel_capacity_after": capacity_after, "arms": rows}
    print(f"study: 2 models x (2 tuning trials + 3 seeds), {args.train_images} train images, {args.epochs} "
          f"epoch(s), storage {result['storage']}")
    print(f"parallel capacity of this machine (2.0 = two free cores): {capacity_before:.2f} before, "
          f"{capacity_after:.2f} after")
    print(f"{'workers':>8} {'seconds':>9} {'speed-up':>9}")
    for row in rows:
        print(f"{row['workers']:>8} {row['seconds']:>9.1f} {row['speedup_vs_reference']:>8.2f}x")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
