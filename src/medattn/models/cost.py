"""Cost of a (backbone, attention, placement): parameters, FLOPs, train/inference images per second, memory.

- params: number of parameters.
- flops: forward FLOPs per image (a multiply-add counts 2), counted by `torch.utils.flop_counter.FlopCounterMode`
  on a meta-device copy of the model (shapes only, nothing computed), with scaled-dot-product attention routed
  to its math form so its matrix products are counted on every device.
- train_images_per_s / infer_images_per_s: timed training steps (forward under autocast, fp32 cross-entropy,
  backward, AdamW) in train mode and forward passes in inference mode, after `warmup` untimed ones, best of
  `repeats` (medattn.models.throughput, the same code bench/train_throughput.py times), at the precision and
  memory format a training run would use on that device (`precision`, the channels_last rule), both recorded
  in the table with the stem the model was built with.
- peak_memory_mb: peak memory of one forward + backward pass in train mode above what was allocated before it
  (activations, gradients, temporaries; not parameters, optimizer state or the input batch). On CUDA it is
  `torch.cuda.max_memory_allocated` minus the memory allocated before the step; on CPU it is the peak of the
  bytes held by tensor storages created during the step, tracked by a dispatch mode that sees every
  operator's outputs and a weak reference that sees every storage freed (buffers private to a fused kernel
  are not seen).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

import pandas as pd
import torch
import torch.nn as nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves
from torch.utils.flop_counter import FlopCounterMode
from torch.utils.weak import WeakIdKeyDictionary

from medattn.models.build import build_model
from medattn.models.describe import combinations
from medattn.models.throughput import Variant, compare_throughput
from medattn.runtime.memory_format import use_channels_last
from medattn.runtime.precision import resolve_precision

MB = 2**20


class StoragePeak(TorchDispatchMode):
    """While active, tracks bytes of tensor storages created and still alive; `peak` is the maximum seen."""

    def __init__(self):
        super().__init__()
        self.live = 0
        self.peak = 0
        self._seen = WeakIdKeyDictionary()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor):
                self._track(t.untyped_storage())
        return out

    def _track(self, storage: torch.UntypedStorage) -> None:
        if storage in self._seen:
            return
        size = storage.nbytes()
        self._seen[storage] = size
        self.live += size
        self.peak = max(self.peak, self.live)
        weakref.finalize(storage, self._free, size)

    def _free(self, size: int) -> None:
        self.live -= size


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def forward_flops(backbone: str, attention: str, image_size: int, in_chans: int = 3, num_classes: int = 2,
                  placement: dict | None = None, small_stem: bool | None = None, stem: str = "auto",
                  **attention_kwargs: Any) -> int:
    """Forward FLOPs for one image, counted on a meta-device copy (nothing is computed)."""
    with torch.device("meta"):
        model = build_model(backbone, attention, num_classes, in_chans, image_size, placement=placement,
                            small_stem=small_stem, stem=stem, **attention_kwargs).eval()
        x = torch.empty(1, in_chans, image_size, image_size)
    counter = FlopCounterMode(display=False)
    with counter, sdpa_kernel([SDPBackend.MATH]), torch.no_grad():
        model(x)
    return int(counter.get_total_flops())


def _forward_backward(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> None:
    model.zero_grad(set_to_none=True)
    nn.functional.cross_entropy(model(x).float(), y).backward()


def peak_step_memory_mb(step: Callable[[], object], device: torch.device) -> float:
    """Peak memory (MiB) of running `step()` once, above what was allocated before it."""
    if device.type == "cuda":
        _sync(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        step()
        _sync(device)
        return (torch.cuda.max_memory_allocated(device) - before) / MB
    tracker = StoragePeak()
    with tracker:
        step()
    return tracker.peak / MB


def measure_cost(backbone: str, attention: str = "none", image_size: int = 224, in_chans: int = 3,
                 num_classes: int = 2, placement: dict | None = None, batch_size: int | None = None,
                 device: str | torch.device | None = None, warmup: int = 1, repeats: int = 3,
                 small_stem: bool | None = None, precision: str = "auto", stem: str = "auto",
                 **attention_kwargs: Any) -> dict[str, Any]:
    """Params, FLOPs/image, train and inference images/s and peak training memory (MiB) of one model."""
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    batch = batch_size or (32 if device.type == "cuda" else 8)
    torch.manual_seed(0)
    model = build_model(backbone, attention, num_classes, in_chans, image_size, placement=placement,
                        small_stem=small_stem, stem=stem, **attention_kwargs).to(device)
    spec = model.medattn_spec
    resolved = resolve_precision(precision, device, (backbone, attention))
    variant = Variant(resolved.name, use_channels_last("auto", device, image_size))
    speed = compare_throughput(model, [variant], batch, image_size, in_chans, num_classes, device,
                               rounds=repeats, warmup=warmup)[variant.label]
    x = torch.randn(batch, in_chans, image_size, image_size, device=device)
    y = torch.randint(0, num_classes, (batch,), device=device)
    model.train()
    with resolved.autocast():
        peak = peak_step_memory_mb(lambda: _forward_backward(model, x, y), device)
    return {
        "backbone": backbone, "attention": spec["attention"], "placement": spec["placement"],
        "image_size": image_size, "in_chans": in_chans, "batch_size": batch, "device": str(device),
        "stem": spec["stem"], "precision": resolved.name, "channels_last": variant.channels_last,
        "params": sum(p.numel() for p in model.parameters()),
        "flops": forward_flops(backbone, attention, image_size, in_chans, num_classes, placement, small_stem,
                               stem=stem, **attention_kwargs),
        "train_images_per_s": speed["train_images_per_s"], "infer_images_per_s": speed["infer_images_per_s"],
        "peak_memory_mb": peak,
    }


def cost_table(image_size: int = 224, in_chans: int = 3, num_classes: int = 2, backbones: list[str] | None = None,
               attentions: list[str] | None = None, batch_size: int | None = None,
               device: str | torch.device | None = None, warmup: int = 1, repeats: int = 3,
               precision: str = "auto") -> pd.DataFrame:
    """One row per registered (backbone, attention) with default placement, plus ratios to the plain backbone."""
    rows = [
        measure_cost(b, a, image_size, in_chans, num_classes, batch_size=batch_size, device=device,
                     warmup=warmup, repeats=repeats, precision=precision)
        for b, a in combinations()
        if (backbones is None or b in backbones) and (attentions is None or a in attentions)
    ]
    table = pd.DataFrame(rows)
    return _with_ratios(table) if len(table) else table


def _with_ratios(table: pd.DataFrame) -> pd.DataFrame:
    """Add params/flops/time/memory ratios to the backbone's 'none' row where the table has one."""
    plain = table[table["attention"] == "none"].set_index("backbone")
    for col, name in (("params", "params_vs_none"), ("flops", "flops_vs_none"),
                      ("peak_memory_mb", "memory_vs_none")):
        table[name] = table[col] / table["backbone"].map(plain[col])
    table["train_time_vs_none"] = table["backbone"].map(plain["train_images_per_s"]) / table["train_images_per_s"]
    return table
