"""Benchmark: segmentation training images/s per U-Net variant in fp32 and bf16 (same run, interleaved), and
per-image Dice + HD95 of 1,000 masks, medattn's batched computation against MONAI's metrics (the reference).

Training: each variant takes `--steps` optimisation steps (DiceCE loss, AdamW) per round in fp32 and then in bf16
autocast, for `--rounds` rounds; the median step time per precision gives images/s (wall clock) and images per
CPU-second (the process's CPU time). On a shared machine the second is the number to read: wall time depends on
the other processes, and with more than one torch thread a loaded CPU spends most of its time in threads waiting
for each other (measured: 2 threads at load average 9 cost about 10x the CPU time of 1 thread). `--threads`
defaults to 1, what each of `medattn study run --workers 2`'s workers uses on 2 cores.
Metrics: 1,000 random smooth masks and predictions (plus empty ones) at `--mask-size` px; medattn.segment.metrics
(batched numpy/scipy) vs monai.metrics DiceMetric and HausdorffDistanceMetric(percentile=95) (a loop over images);
the table gives both times and the largest absolute difference on images where MONAI's value is defined.

    python bench/segmentation.py [--quick] [--size 64] [--threads 1] [--rounds 3] [--steps 3] [--out JSON]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table
from scipy.ndimage import gaussian_filter

from medattn.runtime.precision import Precision, cpu_bf16_features
from medattn.segment.losses import dice_ce_loss
from medattn.segment.metrics import distance_scores, overlap_scores
from medattn.segment.unet import build_segmenter

REPO = Path(__file__).resolve().parents[1]
VARIANTS = ["none", "gate", "canet", "transformer", "cbam"]


def train_speed(attention: str, size: int, batch: int, rounds: int, steps: int) -> dict[str, float]:
    """Training images/s (`fp32`, `bf16`) and images per CPU-second (`fp32_cpu`, `bf16_cpu`), median over rounds
    of `steps` steps each, precisions interleaved."""
    torch.manual_seed(0)
    model = build_segmenter("unet", attention, image_size=size).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loss_fn = dice_ce_loss()
    x = torch.randn(batch, 3, size, size)
    y = (torch.rand(batch, 1, size, size) > 0.7).long()
    times: dict[str, list[float]] = {"fp32": [], "bf16": []}
    cpu: dict[str, list[float]] = {"fp32": [], "bf16": []}
    for r in range(rounds + 1):  # round 0 warms up (kernel selection, allocator)
        for name in times:
            precision = Precision(name, "cpu", "bench")
            start, cpu_start = time.perf_counter(), time.process_time()
            for _ in range(steps):
                with precision.autocast():
                    out = model(x)
                loss = loss_fn(out.float(), y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            if r:
                times[name].append((time.perf_counter() - start) / steps)
                cpu[name].append((time.process_time() - cpu_start) / steps)
    return {**{name: batch / statistics.median(t) for name, t in times.items()},
            **{f"{name}_cpu": batch / statistics.median(t) for name, t in cpu.items()}}


def random_masks(n: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n smooth random truths and predictions; every 20th truth and every 25th prediction empty."""
    rng = np.random.default_rng(seed)
    truth = gaussian_filter(rng.random((n, size, size)), (0, size / 12, size / 12)) > 0.5
    pred = gaussian_filter(rng.random((n, size, size)), (0, size / 12, size / 12)) > 0.5
    truth[::20], pred[::25] = False, False
    return pred, truth


def metric_speed(n: int, size: int) -> dict[str, float]:
    """Seconds for Dice + HD95 of n masks, ours vs MONAI, and the largest difference where MONAI is defined."""
    from monai.metrics import DiceMetric, HausdorffDistanceMetric

    pred, truth = random_masks(n, size, 0)
    start, cpu_start = time.perf_counter(), time.process_time()
    ours = {**overlap_scores(pred, truth), **distance_scores(pred, truth)}
    ours_s, ours_cpu = time.perf_counter() - start, time.process_time() - cpu_start
    p, t = torch.from_numpy(pred)[:, None].float(), torch.from_numpy(truth)[:, None].float()
    start, cpu_start = time.perf_counter(), time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dice = DiceMetric(reduction="none", ignore_empty=False)(p, t)[:, 0].numpy()
        hd95 = HausdorffDistanceMetric(percentile=95, reduction="none")(p, t)[:, 0].numpy()
    monai_s, monai_cpu = time.perf_counter() - start, time.process_time() - cpu_start
    defined = np.isfinite(hd95)
    return {"n": n, "size": size, "ours_seconds": ours_s, "monai_seconds": monai_s, "speedup": monai_s / ours_s,
            "ours_cpu_seconds": ours_cpu, "monai_cpu_seconds": monai_cpu, "speedup_cpu": monai_cpu / ours_cpu,
            "max_abs_diff_dice": float(np.abs(ours["dice"] - dice).max()),
            "max_abs_diff_hd95": float(np.abs(ours["hd95"][defined] - hd95[defined]).max()),
            "images_hd95_undefined_in_monai": int((~defined).sum())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 variants, 1 round, 2 steps, 200 masks.")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1, as a study worker).")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--masks", type=int, default=1000)
    parser.add_argument("--mask-size", type=int, default=64)
    parser.add_argument("--variants", nargs="+", default=VARIANTS)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "segmentation.json")
    args = parser.parse_args()
    if args.quick:
        args.variants, args.rounds, args.steps, args.masks = ["none", "gate", "canet"], 1, 2, 200
    torch.set_num_threads(args.threads)
    start = time.time()
    rows = [{"attention": a, **train_speed(a, args.size, args.batch, args.rounds, args.steps)} for a in args.variants]
    metrics = metric_speed(args.masks, args.mask_size)
    console = Console()
    table = Table(title=f"U-Net training at {args.size} px, batch {args.batch}, {torch.get_num_threads()} thread(s), "
                        f"CPU bf16 features {', '.join(cpu_bf16_features()) or 'none'}, load average "
                        f"{os.getloadavg()[0]:.1f}")
    for col in ("model", "fp32 img/s", "bf16 img/s", "fp32 img/CPU-s", "bf16 img/CPU-s", "bf16 / fp32 (CPU)"):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(f"unet+{r['attention']}", f"{r['fp32']:.1f}", f"{r['bf16']:.1f}", f"{r['fp32_cpu']:.1f}",
                      f"{r['bf16_cpu']:.1f}", f"{r['bf16_cpu'] / r['fp32_cpu']:.2f}")
    console.print(table)
    console.print(f"Dice + HD95 of {metrics['n']} masks at {metrics['size']} px: "
                  f"medattn {metrics['ours_seconds']:.2f} s ({metrics['ours_cpu_seconds']:.2f} CPU-s), "
                  f"MONAI {metrics['monai_seconds']:.2f} s ({metrics['monai_cpu_seconds']:.2f} CPU-s), "
                  f"{metrics['speedup']:.1f}x wall, {metrics['speedup_cpu']:.1f}x CPU; largest difference Dice "
                  f"{metrics['max_abs_diff_dice']:.2e}, HD95 {metrics['max_abs_diff_hd95']:.2e} px "
                  f"({metrics['images_hd95_undefined_in_monai']} images with an empty mask, undefined in MONAI)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"train": rows, "metrics": metrics, "threads": torch.get_num_threads(),
                                    "load_average": os.getloadavg(), "seconds": time.time() - start}, indent=2))


if __name__ == "__main__":
    main()
