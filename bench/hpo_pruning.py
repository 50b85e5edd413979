"""Benchmark pruning in the tuning stage: epochs consumed and best validation score, pruner vs no pruner.

A real study (PneumoniaMNIST 28 px from ../shared/data, one backbone, a 16-trial search over learning
rate, weight decay and augmentation strength) is tuned by the medattn engine once per arm: without
pruning (the reference) and with each pruner. Every arm uses the same seeded random sampler, so trial k
gets the same hyperparameters in every arm and the arms differ only in what the pruner stops; training
is deterministic on CPU, so a pruned trial's learning curve is a prefix of the same trial's unpruned
curve (checked and reported). Target: >= 2.5x fewer epochs for <= 0.5 percentage points lower best value.
Arms: none (reference), median, hyperband, successive_halving; with --work-dir, finished arms are resumed
from their stored studies instead of being trained again.

    python bench/hpo_pruning.py                                   # 16 trials x 8 epochs, 1200 train images
                                                                  # (batch 32), 2 arms at a time: ~1 h on 2 CPUs
    python bench/hpo_pruning.py --trials 8 --max-epochs 4 --train-images 300   # a quick look
    python bench/hpo_pruning.py --sampler tpe                     # TPE instead (arms then sample differently)

Prints a table and writes JSON to bench/results/hpo_pruning.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=None,
                   help="pneumoniamnist.npz (default: $MEDATTN_SHARED_DATA or ../shared/data, medmnist/)")
    p.add_argument("--train-images", type=int, default=1200,
                   help="class-stratified subset of the 4708 training images (0: all); val stays complete")
    p.add_argument("--backbone", default="resnet18")
    p.add_argument("--small-stem", action="store_true",
                   help="keep 28 px resolution in the stem (about 16x the compute of the default stride-4 stem)")
    p.add_argument("--trials", type=int, default=16)
    p.add_argument("--max-epochs", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=32,
                   help="32 on 1200 images gives the steps per epoch of the reference batch 128 on all 4708")
    p.add_argument("--sampler", choices=("random", "tpe"), default="random")
    p.add_argument("--arms", default="none,median,hyperband,successive_halving",
                   help="comma-separated pruners; 'none' is the reference and always runs")
    p.add_argument("--median-startup", type=int, default=4, help="median: trials finished before pruning")
    p.add_argument("--median-warmup", type=int, default=0,
                   help="median: first epochs never pruned (0: a trial may stop after epoch 1)")
    p.add_argument("--hyperband-min", type=int, default=1,
                   help="hyperband / successive_halving: epochs before the first cut")
    p.add_argument("--hyperband-factor", type=int, default=3,
                   help="hyperband / successive_halving: reduction factor")
    p.add_argument("--parallel", type=int, default=min(2, os.cpu_count() or 1),
                   help="arms run at once (one process and one thread each)")
    p.add_argument("--work-dir", type=Path, default=None, help="where the studies are stored (default: temp)")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "hpo_pruning.json")
    return p.parse_args(argv)


def locate_data(arg: Path | None) -> Path:
    """The PneumoniaMNIST npz, or exit with a message naming where it was looked for."""
    if arg is not None:
        path = arg
    else:
        shared = Path(os.environ.get("MEDATTN_SHARED_DATA", ROOT.parent / "shared" / "data"))
        path = shared / "medmnist" / "pneumoniamnist.npz"
    if not path.exists():
        sys.exit(f"error: {path} not found; pass --data PATH/pneumoniamnist.npz or set MEDATTN_SHARED_DATA")
    return path


def subset_npz(src: Path, n_train: int, dest_dir: Path, seed: int = 0) -> Path:
    """A copy of the npz whose train split is a class-stratified subset of n_train images (val/test kept)."""
    if n_train <= 0:
        return src
    data = np.load(src)
    labels = data["train_labels"].reshape(-1)
    if n_train >= len(labels):
        return src
    rng = np.random.default_rng(seed)
    keep = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        keep.append(rng.choice(idx, round(n_train * len(idx) / len(labels)), replace=False))
    idx = np.sort(np.concatenate(keep))
    arrays = {k: data[k] for k in data.files}
    arrays["train_images"], arrays["train_labels"] = data["train_images"][idx], data["train_labels"][idx]
    dest = dest_dir / f"pneumoniamnist_train{len(idx)}.npz"
    np.savez(dest, **arrays)
    return dest


def arm_spec(args: argparse.Namespace, npz: Path, arm: str, work: Path) -> dict[str, Any]:
    """The study spec of one arm (identical across arms except the pruner)."""
    pruner: dict[str, Any] = {"type": arm}
    tag = arm
    if arm == "median":
        pruner.update(startup_trials=args.median_startup, warmup_epochs=args.median_warmup)
        tag += f"-s{args.median_startup}-w{args.median_warmup}"
    elif arm in ("hyperband", "successive_halving"):
        pruner.update(min_epochs=args.hyperband_min, reduction_factor=args.hyperband_factor)
        tag += f"-m{args.hyperband_min}-r{args.hyperband_factor}"
    # a study per arm and setting: re-running with --work-dir resumes finished arms instead of redoing them
    tag += f"-{args.backbone}-n{args.train_images}-b{args.batch_size}-t{args.trials}-e{args.max_epochs}-{args.sampler}"
    return {
        "name": f"hpo-{tag}",
        "datasets": [{"spec": f"medmnist:{npz}", "name": "pneumoniamnist"}],
        "models": {"list": [{"backbone": args.backbone, "small_stem": args.small_stem}]},
        "train": {"epochs": args.max_epochs, "batch_size": args.batch_size, "warmup_epochs": 1},
        "tuning": {
            "trials": args.trials, "max_epochs": args.max_epochs, "sampler": args.sampler, "seed": 0,
            "pruner": pruner,
            "search_space": {
                "lr": {"low": 1e-4, "high": 3e-2, "log": True},
                "weight_decay": {"low": 1e-5, "high": 1e-1, "log": True},
                "augment.strength": {"low": 0.0, "high": 2.0},
            },
        },
        "seeds": [0],
        "output": str(work / tag),
        "workers": {"heartbeat_interval": 10, "grace_period": 120, "poll_interval": 1},
    }


def run_arm(spec: dict[str, Any]) -> dict[str, Any]:
    """Tune one arm in this process (one thread) and return its trials."""
    import torch

    torch.set_num_threads(1)
    from optuna.trial import TrialState

    from medattn.study.engine import Engine
    from medattn.study.plan import make_plan
    from medattn.study.spec import StudySpec

    plan = make_plan(StudySpec.model_validate(spec))
    engine = Engine(plan, log=lambda msg: print(f"[{spec['tuning']['pruner']['type']}] {msg}", flush=True))
    engine.ensure_planned()
    start = time.perf_counter()
    tune = plan.units[0].tune_study
    while engine.step() == "ran":  # one worker runs tuning trials in order; stop before the final stage
        if engine.is_settled(tune, list(range(plan.spec.tuning.trials)), "tune"):
            break
    wall = time.perf_counter() - start
    trials = []
    for t in engine.study(tune).get_trials(deepcopy=False):
        if t.state not in (TrialState.COMPLETE, TrialState.PRUNED):
            continue
        curve = [t.intermediate_values[k] for k in sorted(t.intermediate_values)]
        seconds = (t.datetime_complete - t.datetime_start).total_seconds()
        trials.append({"number": t.number, "state": t.state.name, "params": t.params, "seconds": seconds,
                       "epochs": int(t.user_attrs.get("epochs_run", len(curve))), "value": t.value,
                       "curve": curve, "best_so_far": max(curve) if curve else None})
    return {"wall_seconds_this_call": wall, "trials": trials}


def summarise(arm: str, result: dict[str, Any]) -> dict[str, Any]:
    """Epochs, best complete-trial value and counts of one arm."""
    trials = result["trials"]
    complete = [t for t in trials if t["state"] == "COMPLETE"]
    return {"arm": arm, "trials": len(trials), "pruned": sum(t["state"] == "PRUNED" for t in trials),
            "epochs": sum(t["epochs"] for t in trials),
            "best_value": max((t["value"] for t in complete), default=float("nan")),
            "trial_seconds": sum(t["seconds"] for t in trials)}


def prefix_error(reference: dict[str, Any], other: dict[str, Any]) -> float:
    """Largest |difference| between an arm's learning curves and the same trials' unpruned curves."""
    ref = {t["number"]: t["curve"] for t in reference["trials"]}
    worst = 0.0
    for t in other["trials"]:
        base = ref.get(t["number"], [])
        for a, b in zip(t["curve"], base, strict=False):  # a pruned curve is shorter
            worst = max(worst, abs(a - b))
    return worst


def main(argv: list[str] | None = None) -> int:
    """Run the arms, print the table, write JSON."""
    args = parse_args(argv)
    arms = ["none"] + [a for a in args.arms.split(",") if a and a != "none"]
    known = ("none", "median", "hyperband", "successive_halving")
    unknown = [a for a in arms if a not in known]
    if unknown:
        sys.exit(f"error: unknown pruner(s) {', '.join(unknown)}; use {', '.join(known)}")
    src = locate_data(args.data)
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="medattn-hpo-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    npz = subset_npz(src, args.train_images, work)
    specs = {arm: arm_spec(args, npz, arm, work) for arm in arms}
    print(f"{len(arms)} arm(s) x {args.trials} trials x <= {args.max_epochs} epochs; {args.backbone}, "
          f"{args.train_images or 'all'} train images, sampler {args.sampler}; studies in {work}", flush=True)
    with ProcessPoolExecutor(max_workers=max(1, args.parallel)) as pool:
        futures = {arm: pool.submit(run_arm, spec) for arm, spec in specs.items()}
        results = {arm: f.result() for arm, f in futures.items()}

    reference = summarise("none", results["none"])
    rows = []
    for arm in arms:
        row = summarise(arm, results[arm])
        row["epoch_ratio"] = reference["epochs"] / max(row["epochs"], 1)
        row["best_drop_pp"] = 100 * (reference["best_value"] - row["best_value"])
        row["curve_prefix_max_abs_diff"] = prefix_error(results["none"], results[arm]) if args.sampler == "random" \
            else None
        row["meets_target"] = arm != "none" and row["epoch_ratio"] >= 2.5 and row["best_drop_pp"] <= 0.5
        rows.append(row)

    header = (f"{'pruner':<18} {'trials':>6} {'pruned':>6} {'epochs':>6} {'fewer epochs':>12} "
              f"{'best val bal.acc':>16} {'drop (pp)':>9} {'trial s':>7} {'target':>6}")
    print("\n" + header + "\n" + "-" * len(header))
    for r in rows:
        target = "-" if r["arm"] == "none" else ("yes" if r["meets_target"] else "no")
        print(f"{r['arm']:<18} {r['trials']:>6} {r['pruned']:>6} {r['epochs']:>6} {r['epoch_ratio']:>11.2f}x "
              f"{r['best_value']:>16.4f} {r['best_drop_pp']:>9.2f} {r['trial_seconds']:>7.0f} {target:>6}")
    print("target: >= 2.5x fewer epochs for <= 0.5 pp lower best validation balanced accuracy; "
          "trial s: summed trial durations (arms may run side by side and share the CPU)")
    if args.sampler == "random":
        worst = max(r["curve_prefix_max_abs_diff"] or 0.0 for r in rows)
        print(f"same trials, same curves: pruned curves match the unpruned prefixes to {worst:.2e}")

    args.out.parent.mkdir(parents=True, exist_ok=True)
    payload = {"config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
               "data": str(npz), "rows": rows, "trials": results}
    args.out.write_text(json.dumps(payload, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
