"""Workers: the claim-and-run loop of one process, and a pool of local worker subprocesses."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from optuna.storages import BaseStorage

from medattn.study.engine import Engine, Log, TrainFn
from medattn.study.plan import Plan
from medattn.study.slots import slot_states
from medattn.study.tuning import tuning_keys

logger = logging.getLogger(__name__)

EXIT_OK, EXIT_FAILED_RUNS, EXIT_INTERRUPTED = 0, 1, 130


@dataclass
class WorkerResult:
    """How a worker ended: runs it executed, seconds, exit code (0 ok, 1 some runs failed for good)."""

    runs: int
    seconds: float
    exit_code: int


def run_worker(plan: Plan, storage: BaseStorage | None = None, train_fn: TrainFn | None = None,
               name: str | None = None, max_runs: int | None = None, log: Log | None = None) -> WorkerResult:
    """Claim and run planned trials until the study is complete (or `max_runs` were run); never redo one."""
    prefix, emit = (f"[{name}] " if name else ""), (log or logger.info)

    def say(msg: str) -> None:
        emit(prefix + msg)

    engine = Engine(plan, storage, train_fn, say, worker=None if name is None else _worker_id(name))
    engine.ensure_planned()
    start, runs = time.time(), 0
    stop = _install_sigterm()
    try:
        while max_runs is None or runs < max_runs:
            outcome = engine.step()
            if outcome == "ran":
                runs += 1
            elif outcome == "done":
                break
            else:
                time.sleep(plan.spec.workers.poll_interval)
    except KeyboardInterrupt:
        say("stopped; an interrupted run is marked failed and will be run again by the next worker")
        return WorkerResult(runs, time.time() - start, EXIT_INTERRUPTED)
    finally:
        stop()
    failed = failed_runs(plan, engine.storage)
    if failed:
        say(f"{len(failed)} run(s) failed after {plan.spec.workers.max_retries} retries: {', '.join(failed[:5])}"
            + (" ..." if len(failed) > 5 else ""))
    return WorkerResult(runs, time.time() - start, EXIT_FAILED_RUNS if failed else EXIT_OK)


def failed_runs(plan: Plan, storage: BaseStorage) -> list[str]:
    """`dataset/model stage slot` of every planned run whose retries are exhausted."""
    out = []
    for unit in plan.units:
        for name, keys, stage in ((unit.tune_study, tuning_keys(plan), "tune"),
                                  (unit.final_study, plan.seeds, "seed")):
            try:
                study_id = storage.get_study_id_from_name(name)
            except KeyError:
                continue
            states = slot_states(storage.get_all_trials(study_id, deepcopy=False), keys)
            out += [f"{unit.key} {stage} {k}" for k, s in states.items()
                    if s.status(plan.spec.workers.max_retries) == "failed"]
    return out


def _worker_id(name: str) -> str:
    import socket

    return f"{socket.gethostname()}:{os.getpid()}:{name}"


def _install_sigterm() -> Callable[[], None]:
    """Turn SIGTERM (SLURM preemption, `kill`) into KeyboardInterrupt; returns a function restoring it."""
    if sys.platform == "win32" or _not_main_thread():
        return lambda: None

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    return lambda: signal.signal(signal.SIGTERM, previous)


def _not_main_thread() -> bool:
    import threading

    return threading.current_thread() is not threading.main_thread()


def worker_command(spec_path: Path, plan: Plan, name: str, threads: int) -> list[str]:
    """The command line of one local worker subprocess (`medattn study work ...`)."""
    return [sys.executable, "-m", "medattn.study.cli", "work", str(spec_path), "--storage", plan.storage_url,
            "--out", str(plan.out_dir), "--threads", str(threads), "--name", name, "--skip-checks"]


def run_local_workers(spec_path: Path, plan: Plan, workers: int, threads: int | None = None,
                      log: Log | None = None) -> list[int]:
    """Start `workers` worker subprocesses on this machine, wait for them, return their exit codes."""
    log = log or logger.info
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    threads = threads or max(1, cores // workers)  # C cores / N workers: no oversubscription
    gpus = _gpu_count()
    procs = []
    for i in range(workers):
        env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
        if gpus > 1 and "CUDA_VISIBLE_DEVICES" not in os.environ:
            env["CUDA_VISIBLE_DEVICES"] = str(i % gpus)  # one GPU per worker, round robin
        procs.append(subprocess.Popen(worker_command(spec_path, plan, f"w{i}", threads), env=env))
    log(f"started {workers} worker(s) with {threads} thread(s) each: pids {' '.join(str(p.pid) for p in procs)}")
    try:
        return [p.wait() for p in procs]
    except KeyboardInterrupt:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            p.wait()
        raise


def _gpu_count() -> int:
    try:
        import torch

        return torch.cuda.device_count() if torch.cuda.is_available() else 0
    except Exception:
        return 0
