"""Training and inference throughput of a model under a precision and memory format, and the GEMM peak.

One training step is what train/loop.py does per batch: forward under autocast, fp32 cross-entropy, backward,
AdamW. Variants (precision x memory format) of one model are timed interleaved, round by round, and each keeps
its best round, so that load from other processes on a shared machine hits all variants alike and the ratios
between them stay meaningful even when the absolute numbers do not. The GEMM peak is the best rate of a square
matrix product (2 n^3 FLOPs) in the given dtype: the roofline a convolutional network's achieved FLOP/s is
compared with (Williams et al., "Roofline", CACM 2009).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn as nn

from medattn.runtime.precision import Precision


@dataclass(frozen=True)
class Variant:
    """How to run a model: a precision name and whether activations and weights are channels_last."""

    precision: str  # fp32 | bf16 | fp16
    channels_last: bool = False

    @property
    def label(self) -> str:
        """Short name, e.g. 'bf16+cl'."""
        return self.precision + ("+cl" if self.channels_last else "")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _best_rate(step: Callable[[], object], device: torch.device, units: float) -> float:
    """`units` per second of one timed call of `step`."""
    _sync(device)
    start = time.perf_counter()
    step()
    _sync(device)
    return units / (time.perf_counter() - start)


def gemm_peak_gflops(dtype: torch.dtype, device: torch.device | str = "cpu", n: int = 1024,
                     repeats: int = 5) -> float:
    """Best GFLOP/s of an n x n x n matrix product in `dtype` on `device` (one warm-up, best of `repeats`)."""
    device = torch.device(device)
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    torch.mm(a, b)
    return max(_best_rate(lambda: torch.mm(a, b), device, 2 * n**3 / 1e9) for _ in range(repeats))


class _Runner:
    """One variant's own copy of the model, optimizer and input, with a train step and an inference pass."""

    def __init__(self, model: nn.Module, variant: Variant, x: torch.Tensor, y: torch.Tensor):
        self.precision = Precision(variant.precision, x.device.type, "measured")
        fmt = torch.channels_last if variant.channels_last else torch.contiguous_format
        self.model = copy.deepcopy(model).to(memory_format=fmt)
        self.x = x.contiguous(memory_format=fmt)
        self.y = y
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=1e-4)

    def train_steps(self, steps: int) -> None:
        self.model.train()
        for _ in range(steps):
            with self.precision.autocast():
                logits = self.model(self.x)
            loss = nn.functional.cross_entropy(logits.float(), self.y)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()

    def infer_steps(self, steps: int) -> None:
        self.model.eval()
        with torch.inference_mode(), self.precision.autocast():
            for _ in range(steps):
                self.model(self.x).float().softmax(1)


def compare_throughput(model: nn.Module, variants: list[Variant], batch_size: int, image_size: int,
                       in_chans: int = 3, num_classes: int = 2, device: torch.device | str = "cpu",
                       rounds: int = 3, steps: int = 1, warmup: int = 1,
                       infer_batch_size: int | None = None) -> dict[str, dict[str, float]]:
    """Per variant label: best-round training and inference images/s, the variants timed interleaved."""
    device = torch.device(device)
    torch.manual_seed(0)
    model = model.to(device)
    x = torch.randn(batch_size, in_chans, image_size, image_size, device=device)
    y = torch.randint(0, num_classes, (batch_size,), device=device)
    xi = torch.randn(infer_batch_size or batch_size, in_chans, image_size, image_size, device=device)
    runners = {v.label: _Runner(model, v, x, y) for v in variants}
    inferers = {v.label: _Runner(model, v, xi, y) for v in variants} if infer_batch_size else runners
    for label in runners:
        runners[label].train_steps(warmup)
        inferers[label].infer_steps(warmup)
    best = {label: {"train_images_per_s": 0.0, "infer_images_per_s": 0.0} for label in runners}
    for _ in range(rounds):
        for label, runner in runners.items():
            train = _best_rate(lambda r=runner: r.train_steps(steps), device, batch_size * steps)
            infer = _best_rate(lambda r=inferers[label]: r.infer_steps(steps), device, len(xi) * steps)
            best[label]["train_images_per_s"] = max(best[label]["train_images_per_s"], train)
            best[label]["infer_images_per_s"] = max(best[label]["infer_images_per_s"], infer)
    return best
