"""Benchmark the attention zoo on a stage-3-like feature map: forward+backward time and peak memory.

Three comparisons, each measured in the same run with interleaved repeats; times are the best of the repeats
(on shared machines load only ever adds time, so the minimum is the least noisy estimate):
  1. every mechanism inside a ResNet basic block (256 channels) next to the plain block;
  2. our modules against timm's counterparts with the same configuration and weights (target: time <= 1.05x);
  3. our fused `mhsa` / `local` against naive references that materialise the attention matrix / every
     k x k neighbourhood (target at 28x28: >= 1.5x faster and <= 0.6x peak memory).
Peak memory is CUDA's max_memory_allocated on a GPU, else the peak of live tensor storage created during the
step (see medattn.models.cost.StoragePeak). Prints tables and writes JSON.

    python bench/attention.py                       # batch 32, 14x14 and 28x28, 5 repeats (15 per pair)
    python bench/attention.py --batch 4 --repeats 2 # quick run on a small CPU
    python bench/attention.py --mechanisms mhsa local --sizes 28
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn as nn
from timm.layers.bottleneck_attn import BottleneckAttn
from timm.layers.halo_attn import HaloAttn
from timm.models.resnet import BasicBlock

from medattn.attention import MECHANISMS, create_attention
from medattn.attention.reference import naive_local_unfold, naive_mhsa
from medattn.models.cost import peak_step_memory_mb

TIMM_SAME = ("se", "eca", "cbam", "gc", "nonlocal")  # registry builds timm's own class


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--channels", type=int, default=256)
    p.add_argument("--sizes", type=int, nargs="+", default=[14, 28])
    p.add_argument("--repeats", type=int, default=5, help="timed runs per block; pairs get 3x as many")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--mechanisms", nargs="+", default=[m for m in MECHANISMS if m != "none"])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: torch's choice)")
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "attention.json")
    return p.parse_args(argv)


def in_block(name: str, channels: int, size: int) -> nn.Module:
    """A ResNet basic block with mechanism `name` at its default place ('none': the plain block)."""
    torch.manual_seed(0)
    block = BasicBlock(channels, channels)
    if name == "none":
        return block
    mech = MECHANISMS[name]
    where = mech.default_placement["where"]
    if where == "stage_end":
        return nn.Sequential(block, create_attention(name, channels))
    if where == "after_conv":
        block.se = create_attention(name, channels)
        return block
    context = {"out_channels": channels, "stride": 1, "feat_size": (size, size), "kernel_size": 3, "groups": 1,
               "bias": False}
    block.conv2 = create_attention(name, channels, **{k: v for k, v in context.items() if k in mech.context})
    return block


def timm_pairs(channels: int, size: int, names: list[str]) -> list[tuple[str, nn.Module, str, nn.Module]]:
    """(our label, our module, timm label, timm module) with identical configuration and weights."""
    pairs = []
    for name in [n for n in TIMM_SAME if n in names]:
        ours = create_attention(name, channels)
        theirs = MECHANISMS[name].factory(channels)
        theirs.load_state_dict(ours.state_dict())
        pairs.append((name, ours, type(theirs).__name__, theirs))
    if "mhsa" in names:
        ours = create_attention("mhsa", channels, out_channels=channels, stride=1, feat_size=(size, size))
        theirs = BottleneckAttn(channels, feat_size=(size, size), num_heads=4)
        theirs.load_state_dict({"qkv.weight": ours.qkv.weight, "pos_embed.height_rel": ours.pos.rows,
                                "pos_embed.width_rel": ours.pos.cols})
        pairs.append(("mhsa", ours, "BottleneckAttn", theirs))
    if "local" in names and size % 7 == 0:
        ours = create_attention("local", channels, out_channels=channels, stride=1, mode="halo", block_size=7)
        theirs = HaloAttn(channels, num_heads=8, block_size=7, halo_size=3)
        theirs.load_state_dict({"q.weight": ours.q.weight, "kv.weight": ours.kv.weight,
                                "pos_embed.height_rel": ours.rel_rows, "pos_embed.width_rel": ours.rel_cols})
        pairs.append(("local (mode=halo, b=7)", ours, "HaloAttn", theirs))
    return pairs


def naive_pairs(channels: int, size: int, names: list[str]) -> list[tuple[str, nn.Module, str, Callable]]:
    """(our label, our module, reference label, reference function of x) sharing the module's weights."""
    pairs = []
    if "mhsa" in names:
        mhsa = create_attention("mhsa", channels, out_channels=channels, stride=1, feat_size=(size, size))
        pairs.append(("mhsa", mhsa, "naive softmax(QK^T/sqrt(d)+rel)V", lambda x, m=mhsa: naive_mhsa(m, x)))
    if "local" in names:
        local = create_attention("local", channels, out_channels=channels, stride=1)
        pairs.append(("local", local, "naive unfold of every 7x7 window",
                      lambda x, m=local: naive_local_unfold(m, x)))
    return pairs


def fwd_bwd(fn: Callable, x: torch.Tensor) -> Callable[[], None]:
    """A step: forward `fn(x)`, backward of the output sum (gradients for weights and input)."""

    def step():
        x.grad = None
        fn(x).sum().backward()

    return step


def interleaved_ms(steps: dict[str, Callable], device: torch.device, warmup: int, repeats: int) -> dict:
    """Best wall time (ms) of each step over `repeats`, timing them in turn so load drifts hit all alike."""
    for step in steps.values():
        for _ in range(warmup):
            step()
    times: dict[str, list[float]] = {k: [] for k in steps}
    for _ in range(repeats):
        for key, step in steps.items():
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            step()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            times[key].append((time.perf_counter() - start) * 1e3)
    return {k: min(v) for k, v in times.items()}


def feature_map(args: argparse.Namespace, size: int, device: torch.device) -> torch.Tensor:
    """A random (batch, channels, size, size) input that collects its gradient."""
    torch.manual_seed(1)
    return torch.randn(args.batch, args.channels, size, size, device=device, requires_grad=True)


def bench_blocks(args: argparse.Namespace, size: int, device: torch.device) -> list[dict]:
    """Each mechanism in a basic block vs the plain block."""
    x = feature_map(args, size, device)
    blocks = {n: in_block(n, args.channels, size).to(device) for n in ["none", *args.mechanisms]}
    steps = {n: fwd_bwd(b, x) for n, b in blocks.items()}
    ms = interleaved_ms(steps, device, args.warmup, args.repeats)
    mem = {n: peak_step_memory_mb(s, device) for n, s in steps.items()}
    return [{"mechanism": n, "size": size, "ms": ms[n], "peak_mb": mem[n], "time_vs_plain": ms[n] / ms["none"],
             "memory_vs_plain": mem[n] / mem["none"]} for n in blocks]


def bench_pairs(args: argparse.Namespace, size: int, device: torch.device, kind: str) -> list[dict]:
    """Ours vs a reference (timm module or naive function) on the same input and weights."""
    x = feature_map(args, size, device)
    pairs = timm_pairs(args.channels, size, args.mechanisms) if kind == "timm" else \
        naive_pairs(args.channels, size, args.mechanisms)
    rows = []
    for ours_label, ours, ref_label, ref in pairs:
        ours = ours.to(device)
        if isinstance(ref, nn.Module):
            ref = ref.to(device)
        with torch.no_grad():
            max_diff = (ours(x) - ref(x)).abs().max().item()
        steps = {"ours": fwd_bwd(ours, x), "ref": fwd_bwd(ref, x)}
        ms = interleaved_ms(steps, device, args.warmup, 3 * args.repeats)
        mem = {k: peak_step_memory_mb(s, device) for k, s in steps.items()}
        rows.append({"kind": kind, "ours": ours_label, "reference": ref_label, "size": size,
                     "ours_ms": ms["ours"], "ref_ms": ms["ref"], "time_ratio": ms["ours"] / ms["ref"],
                     "ours_mb": mem["ours"], "ref_mb": mem["ref"], "memory_ratio": mem["ours"] / mem["ref"],
                     "max_abs_diff": max_diff, **_verdict(kind, size, ms, mem)})
    return rows


def _verdict(kind: str, size: int, ms: dict, mem: dict) -> dict:
    if kind == "timm":
        return {"target": "time <= 1.05x", "met": ms["ours"] <= 1.05 * ms["ref"]}
    if size != 28:
        return {"target": "(targets are set at 28x28)", "met": None}
    return {"target": ">=1.5x faster, <=0.6x memory",
            "met": ms["ref"] >= 1.5 * ms["ours"] and mem["ours"] <= 0.6 * mem["ref"]}


def print_table(title: str, rows: list[dict], columns: list[str]) -> None:
    """Print rows as a fixed-width table."""
    print(f"\n{title}")
    cells = [[_fmt(r[c]) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)))


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 0.01 else f"{value:.2f}"
    return str(value)


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark, print the tables, write the JSON; return the results."""
    args = parse_args(argv)
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    results = {"config": {k: str(v) for k, v in vars(args).items()}, "torch": torch.__version__,
               "threads": torch.get_num_threads(), "blocks": [], "vs_timm": [], "vs_naive": []}
    for size in args.sizes:
        results["blocks"] += bench_blocks(args, size, device)
        results["vs_timm"] += bench_pairs(args, size, device, "timm")
        results["vs_naive"] += bench_pairs(args, size, device, "naive")
    where = f"{device.type}, batch {args.batch}, {args.channels} channels, best of {args.repeats}"
    print_table(f"Mechanism in a ResNet basic block, forward+backward ({where})", results["blocks"],
                ["mechanism", "size", "ms", "peak_mb", "time_vs_plain", "memory_vs_plain"])
    pair_cols = ["ours", "reference", "size", "ours_ms", "ref_ms", "time_ratio", "ours_mb", "ref_mb",
                 "memory_ratio", "max_abs_diff", "target", "met"]
    print_table(f"Ours vs timm, same configuration and weights (best of {3 * args.repeats})", results["vs_timm"],
                pair_cols)
    print_table(f"Ours vs naive references, same weights (best of {3 * args.repeats})", results["vs_naive"],
                pair_cols)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(f"\nwrote {args.out}")
    return results


if __name__ == "__main__":
    main()
