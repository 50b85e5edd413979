"""One segmentation run: a pure function of (data with masks, model config, train config, seed).

The same contract as the classifiers' `medattn.train.loop.train_run` (same signature, same `RunResult`,
same run-directory files), so the study engine runs it unchanged: AdamW/SGD with cosine schedule and warmup
(the classifiers' own), autocast at the run's precision (bf16 where the CPU or GPU is fast at it), the loss
(`losses.py`) in fp32, joint augmentation (`augment.py`), and the epoch with the best validation Dice kept.
Every non-train split is then scored per image (`metrics.py`): metrics.json holds split means (dice, iou,
hd95, asd, ece_fg), `predictions_<split>.csv` one row per image (index, dice, iou, hd95, asd, area,
pred_area), the checkpoint the kept weights with a sidecar naming `task: segmentation`.

Departure from the classifiers: the kept epoch is chosen on validation Dice whatever `select_on` says (the
classification metrics do not exist here), and per-epoch validation computes Dice and IoU only (the
surface distances are computed once, on the kept model).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from medattn.data.imageset import ImageSet
from medattn.data.masks import require_masks
from medattn.errors import TrainingFailed
from medattn.rundir import writer
from medattn.runtime.precision import Precision, resolve_precision
from medattn.segment.augment import augment_pair
from medattn.segment.losses import dice_ce_loss
from medattn.segment.metrics import foreground_ece, segmentation_scores
from medattn.segment.unet import SegmentationUNet, build_segmenter
from medattn.train.augment import channel_stats
from medattn.train.config import ModelConfig, TrainConfig
from medattn.train.loop import (
    EpochCallback,
    RunResult,
    _cosine_with_warmup,
    _optimizer,
    _steps_per_epoch,
    resolve_device,
    write_artifacts,
)

SELECT_ON = "dice"


def make_segmenter(cfg: ModelConfig, data: ImageSet) -> SegmentationUNet:
    """The untrained U-Net a ModelConfig names (backbone = U-Net kind, attention = variant) for this data."""
    return build_segmenter(cfg.backbone, cfg.attention, num_classes=2, in_chans=data.in_chans,
                           image_size=data.image_size, placement=cfg.placement, **cfg.attention_kwargs)


def train_segmentation(data: ImageSet, model_cfg: ModelConfig, train_cfg: TrainConfig, seed: int,
                       out_dir: Path | None, on_epoch: EpochCallback | None = None,
                       log: Callable[[str], None] | None = None) -> RunResult:
    """Train a U-Net, keep the epoch with the best validation Dice, score every non-train split per image, save.

    Args:
        data: images with 0/1 `masks` and train/val splits (plus any test splits to score).
        model_cfg: backbone (`unet`, `unet_resnet18`, ...) and attention (`none`, `gate`, `canet`, ...).
        train_cfg: optimisation, schedule, augmentation, precision and device.
        seed: the run is a pure function of (configs, seed) on CPU.
        out_dir: where metrics.json, per-image predictions and the checkpoint go; None writes nothing.
        on_epoch: called with (epoch, validation metrics) after every epoch; may raise to stop the run.
        log: where a line per epoch goes (None: nowhere).
    """
    require_masks(data, f"dataset '{data.source or data.name}'")
    device = resolve_device(train_cfg.device)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    data = data.to(device)
    train_idx, val_idx = data.indices("train"), data.indices("val")
    mean, std = (t.to(device) for t in channel_stats(data.images[train_idx]))
    precision = resolve_precision(train_cfg.precision, device, (model_cfg.backbone, model_cfg.attention))
    model = make_segmenter(model_cfg, data).to(device)
    optimizer = _optimizer(model, train_cfg)
    steps = _steps_per_epoch(len(train_idx), train_cfg.batch_size)
    schedule = _cosine_with_warmup(optimizer, train_cfg, steps)
    loss_fn = dice_ce_loss()
    history, best, train_seconds, seen = [], {"score": -math.inf, "epoch": 0, "state": None}, 0.0, 0
    for epoch in range(1, train_cfg.epochs + 1):
        start = time.perf_counter()
        loss = _train_epoch(model, data, train_idx, mean, std, train_cfg, optimizer, schedule, loss_fn, gen, precision)
        seconds = time.perf_counter() - start
        train_seconds, seen = train_seconds + seconds, seen + steps * min(train_cfg.batch_size, len(train_idx))
        if not math.isfinite(loss):
            raise TrainingFailed(f"run diverged: training loss is {loss} at epoch {epoch}; lower the learning rate")
        val = _summary(*_predict(model, data, val_idx, mean, std, train_cfg, precision), distances=False)[0]
        history.append({"epoch": epoch, "train_loss": loss, "lr": optimizer.param_groups[0]["lr"],
                        "seconds": seconds, **{f"val_{k}": v for k, v in val.items()}})
        if val[SELECT_ON] > best["score"]:
            best = {"score": val[SELECT_ON], "epoch": epoch,
                    "state": {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}}
        if log is not None:
            log(f"epoch {epoch}/{train_cfg.epochs}: loss {loss:.4f}, val dice {val['dice']:.4f} ({seconds:.1f} s)")
        if on_epoch is not None:
            on_epoch(epoch, val)
        if train_cfg.early_stop_patience is not None and epoch - best["epoch"] >= train_cfg.early_stop_patience:
            break
    model.load_state_dict(best["state"])
    metrics, tables, eval_ips = _evaluate_all(model, data, mean, std, train_cfg, precision)
    timing = {"train_images_per_s": seen / max(train_seconds, 1e-9), "eval_images_per_s": eval_ips,
              "train_seconds": train_seconds}
    hardware = {"precision": precision.name, "precision_reason": precision.reason, "device": str(device),
                "threads": torch.get_num_threads(), "task": "segmentation"}
    result = RunResult("ok", best["epoch"], len(history), metrics, history, timing, {}, hardware)
    if out_dir is not None:
        sidecar = _sidecar(data, model_cfg, train_cfg, seed, mean, std)
        write_artifacts(out_dir, result, tables, best["state"], {**sidecar, "epoch": best["epoch"]})
    return result


def _train_epoch(model, data: ImageSet, train_idx, mean, std, cfg: TrainConfig, optimizer, schedule, loss_fn,
                 gen: torch.Generator, precision: Precision) -> float:
    """One pass over the training split; forward under autocast, loss in fp32; returns the mean loss."""
    model.train()
    order = train_idx[torch.randperm(len(train_idx), generator=gen).to(train_idx.device)]
    steps = _steps_per_epoch(len(order), cfg.batch_size)
    total = torch.zeros((), device=order.device)
    for step in range(steps):
        idx = order[step * cfg.batch_size:(step + 1) * cfg.batch_size]
        x, y = augment_pair(data.images[idx].float().div_(255), data.masks[idx], cfg.augment, gen)
        x = (x - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)
        with precision.autocast():
            logits = model(x)
        loss = loss_fn(logits.float(), y[:, None])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        total += loss.detach()
    return float(total) / steps


@torch.inference_mode()
def _predict(model, data: ImageSet, idx: torch.Tensor, mean, std, cfg: TrainConfig, precision: Precision):
    """Foreground probabilities (N, H, W) float32 numpy and the 0/1 truths for the images at `idx`."""
    model.eval()
    probs = []
    for start in range(0, len(idx), cfg.eval_batch_size):
        part = idx[start:start + cfg.eval_batch_size]
        x = (data.images[part].float().div_(255) - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)
        with precision.autocast():
            logits = model(x)
        probs.append(logits.float().softmax(1)[:, 1].cpu())
    return torch.cat(probs).numpy(), data.masks[idx].cpu().numpy()


def _summary(prob: np.ndarray, truth: np.ndarray, distances: bool = True) -> tuple[dict[str, float], dict]:
    """Split means of the per-image scores (plus the foreground ECE) and the per-image arrays."""
    scores = segmentation_scores(prob > 0.5, truth, distances=distances)
    means = {k: float(np.mean(v)) for k, v in scores.items() if k not in ("area", "pred_area")}
    means["ece_fg"] = foreground_ece(prob, truth)
    return means, scores


def _evaluate_all(model, data: ImageSet, mean, std, cfg: TrainConfig, precision: Precision):
    metrics, tables, seconds, count = {}, {}, 0.0, 0
    for split in data.split_names:
        if split == "train":
            continue
        idx = data.indices(split)
        start = time.perf_counter()
        prob, truth = _predict(model, data, idx, mean, std, cfg, precision)
        seconds, count = seconds + time.perf_counter() - start, count + len(idx)
        metrics[split], scores = _summary(prob, truth)
        tables[split] = pd.DataFrame({"index": idx.cpu().numpy(), **scores})
    return metrics, tables, count / max(seconds, 1e-9)


def _sidecar(data: ImageSet, model_cfg: ModelConfig, train_cfg: TrainConfig, seed: int, mean, std) -> dict:
    from medattn.provenance import provenance

    return writer.stamped({
        "task": "segmentation", "model": model_cfg.model_dump(), "train": train_cfg.model_dump(), "seed": seed,
        "data": {"name": data.name, "source": data.source, "in_chans": data.in_chans,
                 "image_size": data.image_size, "mean": mean.tolist(), "std": std.tolist()},
    }, provenance())
