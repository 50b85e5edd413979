"""One training run: a pure function of (data, model config, train config, seed) that writes its artifacts."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn as nn

from medattn.data.imageset import ImageSet
from medattn.errors import TrainingFailed
from medattn.models.build import build_model
from medattn.rundir import layout, writer
from medattn.rundir.reader import relative_path
from medattn.runtime.memory_format import use_channels_last
from medattn.runtime.precision import Precision, resolve_precision
from medattn.train.augment import augment, channel_stats, to_float
from medattn.train.checkpoint import save_checkpoint
from medattn.train.config import ModelConfig, TrainConfig
from medattn.train.metrics import classification_metrics
from medattn.train.progress import EpochProgress, Log

EpochCallback = Callable[[int, dict[str, float]], None]
logger = logging.getLogger(__name__)


@dataclass
class RunResult:
    """What a run produced: per-split metrics, the training history, timing and artifact paths."""

    status: str
    best_epoch: int
    epochs_run: int
    metrics: dict[str, dict[str, float]]
    history: list[dict]
    timing: dict[str, float]
    artifacts: dict[str, str] = field(default_factory=dict)
    hardware: dict = field(default_factory=dict)


@dataclass(frozen=True)
class _Execution:
    """How the run computes: autocast precision, memory format, device."""

    precision: Precision
    channels_last: bool
    device: torch.device

    def layout(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def describe(self, model: nn.Module) -> dict:
        """What metrics.json records about it (plus the stem the model was built with and the CPU threads)."""
        return {"precision": self.precision.name, "precision_reason": self.precision.reason,
                "channels_last": self.channels_last, "device": str(self.device),
                "stem": model.medattn_spec["stem"], "threads": torch.get_num_threads()}


@dataclass
class _Batches:
    """The device-side view of the data a run needs: uint8 images, labels, split indices, normalisation."""

    data: ImageSet
    mean: torch.Tensor
    std: torch.Tensor
    size: int

    def floats(self, idx: torch.Tensor) -> torch.Tensor:
        return to_float(self.data.images[idx], self.mean, self.std, self.size)


def resolve_device(name: str) -> torch.device:
    """`auto` picks CUDA when available, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def make_model(cfg: ModelConfig, data: ImageSet) -> nn.Module:
    """Build the untrained network a ModelConfig describes for this dataset's classes, channels and size."""
    return build_model(cfg.backbone, cfg.attention, num_classes=data.num_classes, in_chans=data.in_chans,
                       image_size=data.image_size, small_stem=cfg.small_stem, drop_rate=cfg.drop_rate,
                       placement=cfg.placement, stem=cfg.stem, init_from=cfg.init, **cfg.attention_kwargs)


def _execution(model_cfg: ModelConfig, train_cfg: TrainConfig, device: torch.device, image_size: int) -> _Execution:
    """Resolve precision and memory format for this run; log a warning when `auto` falls back to fp32."""
    precision = resolve_precision(train_cfg.precision, device, (model_cfg.backbone, model_cfg.attention))
    if "falls back" in precision.reason:
        logger.warning("notice: training in fp32: %s", precision.reason)
    return _Execution(precision, use_channels_last(train_cfg.channels_last, device, image_size), device)


def train_run(data: ImageSet, model_cfg: ModelConfig, train_cfg: TrainConfig, seed: int, out_dir: Path | None,
              on_epoch: EpochCallback | None = None, log: Log | None = None) -> RunResult:
    """Train, keep the epoch with the best validation ``train_cfg.select_on``, evaluate every non-train split, save.

    Args:
        data: the dataset with its ``train`` and ``val`` splits (and any test splits to evaluate).
        model_cfg: which network to build.
        train_cfg: optimisation, schedule, augmentation and device.
        seed: the run is a pure function of (configs, seed) on CPU.
        out_dir: where metrics.json, predictions and the checkpoint go; None writes nothing (tuning trials).
        on_epoch: called with (epoch, validation metrics) after every epoch; may raise to stop the run
            (the tuning stage raises ``optuna.TrialPruned``).
        log: where the per-epoch progress lines go when stdout is not a terminal and ``train_cfg.progress`` is
            on (default: the ``medattn.train.progress`` logger; ``medattn train`` prints them).
    """
    device = resolve_device(train_cfg.device)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    data = data.to(device)
    train_idx, val_idx = data.indices("train"), data.indices("val")
    mean, std = channel_stats(data.images[train_idx])
    batches = _Batches(data, mean.to(device), std.to(device), data.image_size)
    run = _execution(model_cfg, train_cfg, device, data.image_size)
    model = make_model(model_cfg, data).to(device)
    if run.channels_last:
        model = model.to(memory_format=torch.channels_last)
    use_cuda = device.type == "cuda"
    steps_per_epoch = _steps_per_epoch(len(train_idx), train_cfg.batch_size)
    optimizer = _optimizer(model, train_cfg)
    schedule = _cosine_with_warmup(optimizer, train_cfg, steps_per_epoch)
    loss_fn = nn.CrossEntropyLoss(weight=_class_weights(data, train_idx, train_cfg),
                                  label_smoothing=train_cfg.label_smoothing)
    sidecar = _sidecar(data, model_cfg, train_cfg, seed, batches, model)
    scaler = run.precision.grad_scaler()

    history: list[dict] = []
    best = {"score": -math.inf, "epoch": 0, "state": None}
    artifacts: dict[str, str] = {}
    train_seconds, images_seen = 0.0, 0
    with EpochProgress(train_cfg.epochs, enabled=train_cfg.progress, metric=train_cfg.select_on, log=log) as progress:
        for epoch in range(1, train_cfg.epochs + 1):
            start = time.perf_counter()
            loss = _train_epoch(model, batches, train_idx, train_cfg, optimizer, schedule, loss_fn, gen, run, scaler)
            if use_cuda:
                torch.cuda.synchronize()
            seconds = time.perf_counter() - start
            train_seconds += seconds
            epoch_images = steps_per_epoch * min(train_cfg.batch_size, len(train_idx))
            images_seen += epoch_images
            if not math.isfinite(loss):
                _fail(out_dir, epoch, history, f"training loss is {loss} at epoch {epoch}", sidecar)
            val = _evaluate(model, batches, val_idx, train_cfg, run)[0]
            row = {"epoch": epoch, "train_loss": loss, "lr": optimizer.param_groups[0]["lr"], "seconds": seconds,
                   **{f"val_{k}": v for k, v in val.items()}}
            history.append(row)
            progress.update(epoch, loss, val[train_cfg.select_on], epoch_images / max(seconds, 1e-9))
            if val[train_cfg.select_on] > best["score"]:  # selectable metrics are higher-is-better; NaN never wins
                best = {"score": val[train_cfg.select_on], "epoch": epoch, "state": _cpu_state(model)}
            if out_dir is not None and epoch in train_cfg.save_epochs:
                path = save_checkpoint(model.state_dict(), out_dir / layout.epoch_checkpoint_name(epoch),
                                       {**sidecar, "epoch": epoch})
                artifacts[f"checkpoint_epoch_{epoch}"] = str(path)
            if on_epoch is not None:
                on_epoch(epoch, val)
            patience = train_cfg.early_stop_patience
            if patience is not None and epoch - best["epoch"] >= patience:
                break

    if best["state"] is None:  # the selection metric was NaN at every epoch (e.g. a single-class val split)
        best = {"score": math.nan, "epoch": len(history), "state": _cpu_state(model)}
    model.load_state_dict(best["state"])
    metrics, predictions, eval_ips = _evaluate_all(model, batches, train_cfg, run)
    timing = {"train_images_per_s": images_seen / max(train_seconds, 1e-9), "eval_images_per_s": eval_ips,
              "train_seconds": train_seconds}
    result = RunResult("ok", best["epoch"], len(history), metrics, history, timing, artifacts, run.describe(model))
    if out_dir is not None:
        write_artifacts(out_dir, result, predictions, best["state"], {**sidecar, "epoch": best["epoch"]})
    return result


def _steps_per_epoch(n: int, batch_size: int) -> int:
    # The ragged last batch is dropped (a batch of one breaks BatchNorm) unless it is the only one.
    return max(1, n // batch_size)


def _optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=True)
    return torch.optim.AdamW(groups, lr=cfg.lr)


def _cosine_with_warmup(optimizer: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int):
    total = cfg.epochs * steps_per_epoch
    warmup = min(int(cfg.warmup_epochs * steps_per_epoch), total - 1)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        if cfg.lr_milestones:  # MedMNIST v2's schedule: x0.1 at each milestone epoch
            return 0.1 ** sum(step >= m * steps_per_epoch for m in cfg.lr_milestones)
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(total - warmup, 1)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _class_weights(data: ImageSet, train_idx: torch.Tensor, cfg: TrainConfig) -> torch.Tensor | None:
    if not cfg.class_weighted:
        return None
    counts = torch.bincount(data.labels[train_idx], minlength=data.num_classes).float().clamp_min(1)
    return counts.sum() / (len(counts) * counts)


def _train_epoch(model, batches: _Batches, train_idx, cfg: TrainConfig, optimizer, schedule, loss_fn,
                 gen: torch.Generator, run: _Execution, scaler: torch.amp.GradScaler | None) -> float:
    """One pass over the training split; the forward runs under the run's autocast, the loss in fp32."""
    model.train()
    order = train_idx[torch.randperm(len(train_idx), generator=gen).to(train_idx.device)]
    steps = _steps_per_epoch(len(order), cfg.batch_size)
    total = torch.zeros((), device=order.device)
    for step in range(steps):
        idx = order[step * cfg.batch_size:(step + 1) * cfg.batch_size]
        x = augment(batches.data.images[idx].float().div_(255), cfg.augment, gen)
        x = run.layout((x - batches.mean.view(1, -1, 1, 1)) / batches.std.view(1, -1, 1, 1))
        with run.precision.autocast():
            logits = model(x)
        loss = loss_fn(logits.float(), batches.data.labels[idx])
        optimizer.zero_grad(set_to_none=True)
        if scaler is None:
            loss.backward()
            optimizer.step()
        else:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        schedule.step()
        total += loss.detach()
    return float(total) / steps


@torch.inference_mode()
def _evaluate(model, batches: _Batches, idx: torch.Tensor, cfg: TrainConfig, run: _Execution):
    """Metrics and class probabilities (numpy, softmax in fp32) for the images at `idx`, under the run's autocast."""
    model.eval()
    probs = []
    for start in range(0, len(idx), cfg.eval_batch_size):
        x = run.layout(batches.floats(idx[start:start + cfg.eval_batch_size]))
        with run.precision.autocast():
            logits = model(x)
        probs.append(logits.float().softmax(1))
    p = torch.cat(probs).cpu().numpy().astype(np.float64)
    labels = batches.data.labels[idx].cpu().numpy()
    return classification_metrics(labels, p), p


def _evaluate_all(model, batches: _Batches, cfg: TrainConfig, run: _Execution):
    metrics, predictions, seconds, count = {}, {}, 0.0, 0
    for split in batches.data.split_names:
        if split == "train":
            continue
        idx = batches.data.indices(split)
        start = time.perf_counter()
        metrics[split], probs = _evaluate(model, batches, idx, cfg, run)
        seconds += time.perf_counter() - start
        count += len(idx)
        predictions[split] = _prediction_table(idx, batches.data.labels[idx], probs)
    return metrics, predictions, count / max(seconds, 1e-9)


def _prediction_table(idx: torch.Tensor, labels: torch.Tensor, probs: np.ndarray) -> pd.DataFrame:
    table = pd.DataFrame({"index": idx.cpu().numpy(), "label": labels.cpu().numpy()})
    for k in range(probs.shape[1]):
        table[f"prob_{k}"] = probs[:, k]
    return table


def _cpu_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def _sidecar(data: ImageSet, model_cfg: ModelConfig, train_cfg: TrainConfig, seed: int, batches: _Batches,
             model: nn.Module) -> dict:
    # The stem is recorded as built (not "auto"), so a checkpoint rebuilds the same network if the policy changes.
    from medattn.provenance import provenance

    return writer.stamped({
        "model": {**model_cfg.model_dump(), "small_stem": None, "stem": model.medattn_spec["stem"],
                  "init_record": model.medattn_spec.get("init")},  # path, SHA-256, loaded/new/unexpected keys
        "train": train_cfg.model_dump(), "seed": seed,
        "data": {"name": data.name, "source": data.source, "class_names": data.class_names,
                 "num_classes": data.num_classes, "in_chans": data.in_chans, "image_size": data.image_size,
                 "mean": batches.mean.tolist(), "std": batches.std.tolist()},
    }, provenance())


def write_artifacts(out_dir: Path, result: RunResult, predictions: dict[str, pd.DataFrame], state, sidecar) -> None:
    """Write weights, sidecar, predictions and metrics.json (whose artifact paths are relative to `out_dir`)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    result.artifacts["checkpoint"] = str(save_checkpoint(state, out_dir / layout.CHECKPOINT, sidecar))
    result.artifacts["config"] = str(out_dir / layout.SIDECAR)
    for split, table in predictions.items():
        result.artifacts[layout.predictions_key(split)] = str(writer.write_predictions(out_dir, split, table))
    result.artifacts["metrics"] = str(out_dir / layout.METRICS_JSON)
    stored = {k: relative_path(v, out_dir) for k, v in result.artifacts.items()}
    writer.write_metrics(out_dir, asdict(replace(result, artifacts=stored)))


def _fail(out_dir: Path | None, epoch: int, history: list[dict], reason: str, sidecar: dict) -> None:
    """Record the failed run (history so far) and stop it with a TrainingFailed error."""
    where = ""
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        record = {"status": "failed", "error": reason, "epochs_run": epoch, "history": history, "config": sidecar}
        where = f" (history so far in {writer.write_metrics(out_dir, record)})"
    raise TrainingFailed(f"run diverged: {reason}; lower the learning rate or enable class weighting{where}")
