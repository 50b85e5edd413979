"""Benchmark: medattn's batched on-device data pipeline vs the MedMNIST reference pipeline.

Reference: medmnist's Dataset class + torchvision transforms (per sample, PIL) + DataLoader with 2 workers.
Ours: uint8 tensor in memory, indexed by batch, augmented and normalised per batch (train/augment.py).
Also: the training-step time with our pipeline vs with pre-built in-memory float tensors (data overhead).

    python bench/data_pipeline.py [--data-dir DIR] [--batches 30] [--steps 8]
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

from medattn.data.dataset_spec import LoadContext, load_dataset
from medattn.models.build import build_model
from medattn.train.augment import augment, channel_stats
from medattn.train.config import AugmentConfig

REPO = Path(__file__).resolve().parents[1]


def reference_loader(data_dir: Path, batch_size: int):
    """MedMNIST's own Dataset with torchvision per-sample transforms, in a 2-worker DataLoader."""
    import medmnist
    from torchvision import transforms as T

    transform = T.Compose([
        T.RandomHorizontalFlip(), T.RandomVerticalFlip(),
        T.RandomAffine(degrees=15, translate=(0.05, 0.05), scale=(0.9, 1.1)),
        T.ColorJitter(brightness=0.1, contrast=0.1), T.ToTensor(), T.Normalize([0.5], [0.5]),
    ])
    dataset = medmnist.PneumoniaMNIST(split="train", root=str(data_dir), transform=transform, download=False)
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=2,
                                       drop_last=True, persistent_workers=True)


def ours_batches(images: torch.Tensor, labels: torch.Tensor, batch_size: int, gen: torch.Generator):
    """Our pipeline: batched indexing + augmentation + normalisation, endless epochs."""
    mean, std = channel_stats(images)
    cfg = AugmentConfig()
    while True:
        order = torch.randperm(len(images), generator=gen)
        for start in range(0, len(order) - batch_size + 1, batch_size):
            idx = order[start:start + batch_size]
            x = augment(images[idx].float().div_(255), cfg, gen)
            yield (x - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1), labels[idx]


def samples_per_second(batches, n_batches: int, batch_size: int) -> float:
    """Throughput of an iterator of batches, after one warm-up batch."""
    it = iter(batches)
    next(it)
    start = time.perf_counter()
    for _ in range(n_batches):
        next(it)
    return n_batches * batch_size / (time.perf_counter() - start)


def step_time(model, optimizer, batches, steps: int) -> float:
    """Median seconds per training step over `steps` steps fed by `batches`."""
    it, times = iter(batches), []
    for _ in range(steps + 1):
        start = time.perf_counter()
        x, y = next(it)
        loss = torch.nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - start)
    return sorted(times[1:])[len(times[1:]) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Path(os.environ.get("MEDATTN_SHARED_DATA",
                                                                                REPO.parent / "shared" / "data"))
                        / "medmnist")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument("--steps", type=int, default=8)
    args = parser.parse_args()

    data = load_dataset("medmnist:pneumoniamnist", LoadContext(data_dir=args.data_dir))
    idx = data.indices("train")
    images, labels = data.images[idx], data.labels[idx]
    gen = torch.Generator().manual_seed(0)

    ref_sps = samples_per_second(reference_loader(args.data_dir, args.batch_size), args.batches, args.batch_size)
    ours_sps = samples_per_second(ours_batches(images, labels, args.batch_size, gen), args.batches, args.batch_size)

    torch.manual_seed(0)
    model = build_model("resnet18", "none", num_classes=2, in_chans=1, image_size=28)
    optimizer = torch.optim.AdamW(model.parameters())
    fixed = next(ours_batches(images, labels, args.batch_size, gen))
    prebuilt = step_time(model, optimizer, iter(lambda: fixed, None), args.steps)
    ours_step = step_time(model, optimizer, ours_batches(images, labels, args.batch_size, gen), args.steps)
    overhead = (ours_step - prebuilt) / ours_step

    rows = [
        ("reference: medmnist Dataset + torchvision + DataLoader(2 workers)", f"{ref_sps:,.0f}", "1.0x"),
        ("medattn batched pipeline", f"{ours_sps:,.0f}", f"{ours_sps / ref_sps:.1f}x"),
    ]
    table = Table(title=f"PneumoniaMNIST-28 train split, batch {args.batch_size}: samples/s delivered")
    for col in ("pipeline", "samples/s", "vs reference"):
        table.add_column(col)
    for row in rows:
        table.add_row(*row)
    steps = Table(title="ResNet-18 (small stem) training step, median seconds")
    for col in ("input", "s/step", "data overhead"):
        steps.add_column(col)
    steps.add_row("pre-built in-memory tensors", f"{prebuilt:.3f}", "-")
    steps.add_row("medattn batched pipeline", f"{ours_step:.3f}", f"{100 * overhead:.1f} %")
    console = Console()
    console.print(table)
    console.print(steps)

    result = {"reference_samples_per_s": ref_sps, "ours_samples_per_s": ours_sps, "speedup": ours_sps / ref_sps,
              "step_prebuilt_s": prebuilt, "step_ours_s": ours_step, "data_overhead": overhead,
              "batch_size": args.batch_size, "torch_threads": torch.get_num_threads()}
    out = REPO / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "data_pipeline.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
