"""Benchmark: training and inference images/s in fp32 and bf16 (with and without channels_last), against the
GEMM peaks of each precision measured in the same run.

Per (backbone, image size) with the default stem, and per attention mechanism on ResNet-18 at 64 px, the
variants are timed interleaved (medattn.models.throughput, the code `medattn models cost` uses), so load from
other processes hits them alike; the bf16/fp32 ratios are the result, absolute numbers depend on the load.
Achieved GFLOP/s = images/s x forward FLOPs per image (x3 for a training step: forward + backward), printed as
a share of the GEMM peak of the precision it ran in. Also: inference images/s against the evaluation batch size
(where throughput falls off the cache cliff).

    python bench/train_throughput.py [--quick] [--rounds 3] [--stems s1 s2 standard] [--out JSON]

`--stems` also times ResNet-18 with each given stem at every size (fp32 and bf16 + channels_last): the cost
column of the stem policy table (docs/performance.md "Stem policy").
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from medattn.attention import MECHANISMS
from medattn.models.build import build_model
from medattn.models.cost import forward_flops
from medattn.models.throughput import Variant, compare_throughput, gemm_peak_gflops
from medattn.runtime.precision import cpu_bf16_features

REPO = Path(__file__).resolve().parents[1]
VARIANTS = [Variant("fp32"), Variant("fp32", True), Variant("bf16"), Variant("bf16", True)]


def peaks(device: torch.device) -> dict[str, float]:
    """GEMM GFLOP/s per precision (best of the runs)."""
    return {"fp32": gemm_peak_gflops(torch.float32, device), "bf16": gemm_peak_gflops(torch.bfloat16, device)}


def measure(backbone: str, attention: str, size: int, batch: int, variants: list[Variant], rounds: int,
            device: torch.device, stem: str = "auto") -> list[dict]:
    """One row per variant: img/s, achieved GFLOP/s, and the bf16 speed-up over fp32 of the same layout."""
    model = build_model(backbone, attention, num_classes=2, in_chans=3, image_size=size, stem=stem)
    flops = forward_flops(backbone, attention, size, 3, 2, stem=stem)
    speeds = compare_throughput(model, variants, batch, size, device=device, rounds=rounds)
    rows = []
    for v in variants:
        s = speeds[v.label]
        rows.append({"backbone": backbone, "attention": attention, "image_size": size, "batch_size": batch,
                     "stem": model.medattn_spec["stem"], "variant": v.label, "precision": v.precision,
                     "channels_last": v.channels_last, "gflops_per_image": flops / 1e9, **s,
                     "train_gflops": 3 * flops * s["train_images_per_s"] / 1e9,
                     "infer_gflops": flops * s["infer_images_per_s"] / 1e9,
                     "train_vs_fp32": s["train_images_per_s"] / speeds["fp32"]["train_images_per_s"],
                     "infer_vs_fp32": s["infer_images_per_s"] / speeds["fp32"]["infer_images_per_s"]})
    return rows


def eval_batch_sweep(sizes: list[int], batches: list[int], device: torch.device, rounds: int) -> list[dict]:
    """Inference images/s of ResNet-18 in bf16 (the default on a bf16 CPU) per evaluation batch size."""
    rows = []
    for size in sizes:
        model = build_model("resnet18", num_classes=2, in_chans=3, image_size=size)
        for batch in batches:
            s = compare_throughput(model, [Variant("bf16")], 2, size, device=device, rounds=rounds,
                                   infer_batch_size=batch)["bf16"]
            rows.append({"image_size": size, "eval_batch_size": batch, "infer_images_per_s": s["infer_images_per_s"]})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="ResNet-18 only, two mechanisms, small batches.")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--backbones", nargs="+", default=["resnet18", "efficientnet_b0", "convnext_atto",
                                                           "vit_tiny"])
    parser.add_argument("--sizes", nargs="+", type=int, default=[28, 64, 224])
    parser.add_argument("--mechanisms", nargs="*", default=[m for m in MECHANISMS if m != "none"])
    parser.add_argument("--eval-batches", nargs="*", type=int, default=[64, 256, 512, 1024])
    parser.add_argument("--stems", nargs="*", default=[], help="Also time ResNet-18 with each of these stems.")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "train_throughput.json")
    args = parser.parse_args()
    if args.quick:
        args.backbones, args.mechanisms, args.eval_batches = ["resnet18"], ["se", "mhsa"], [64, 512]
    device = torch.device("cpu")
    start = time.time()
    peak = peaks(device)
    rows = []
    for backbone in args.backbones:
        for size in args.sizes:
            batch = 16 if size >= 224 else 64
            rows += measure(backbone, "none", size, batch, VARIANTS, args.rounds, device)
    for size in args.sizes:
        for stem in args.stems:
            batch = 16 if size >= 224 else 64
            rows += measure("resnet18", "none", size, batch, [Variant("fp32"), Variant("bf16", True)], args.rounds,
                            device, stem=stem)
    for mechanism in args.mechanisms:
        rows += measure("resnet18", mechanism, 64, 32, [Variant("fp32"), Variant("bf16", True)], args.rounds, device)
    sweep = eval_batch_sweep([28, 64], args.eval_batches, device, args.rounds)
    after = peaks(device)
    peak = {k: max(peak[k], after[k]) for k in peak}
    for r in rows:
        r["train_share_of_peak"] = r["train_gflops"] / peak[r["precision"]]
        r["infer_share_of_peak"] = r["infer_gflops"] / peak[r["precision"]]
    title = (f"training/inference throughput, {torch.get_num_threads()} thread(s), CPU bf16 features "
             f"{', '.join(cpu_bf16_features()) or 'none'}; GEMM peak fp32 {peak['fp32']:.0f} GFLOP/s, bf16 "
             f"{peak['bf16']:.0f} GFLOP/s; load average {os.getloadavg()[0]:.1f}")
    table = Table(title=title)
    for col in ("model", "px", "stem", "variant", "train img/s", "x fp32", "% peak", "infer img/s", "x fp32"):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(f"{r['backbone']}+{r['attention']}", str(r["image_size"]), r["stem"], r["variant"],
                      f"{r['train_images_per_s']:.1f}", f"{r['train_vs_fp32']:.2f}",
                      f"{100 * r['train_share_of_peak']:.0f}", f"{r['infer_images_per_s']:.0f}",
                      f"{r['infer_vs_fp32']:.2f}")
    console = Console()
    console.print(table)
    for r in sweep:
        console.print(f"eval batch {r['eval_batch_size']:>5} at {r['image_size']} px: "
                      f"{r['infer_images_per_s']:.0f} img/s (bf16)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"gemm_peak_gflops": peak, "rows": rows, "eval_batch_sweep": sweep,
                                    "threads": torch.get_num_threads(), "load_average": os.getloadavg(),
                                    "seconds": time.time() - start}, indent=2))


if __name__ == "__main__":
    main()
