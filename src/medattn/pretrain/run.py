"""`medattn pretrain`: contrastive pretraining of a plain backbone on a dataset's training images (labels unused).

SimCLR (Chen et al. 2020) with the MICLe option (Azizi et al. 2021), see :mod:`medattn.pretrain.contrastive`.
Departures from the papers, for small images on small machines: Adam(W) instead of LARS, batches of 64-512
instead of 4096, a 2-layer projection head (features -> features -> 128) and views from medattn's batched
augmentation (flips, right-angle and small rotations, scale, shift, brightness, contrast, saturation at the
strength given) instead of SimCLR's random-resized crop, colour drop and blur. The forward runs under the
same autocast rule as training (bf16 on CPUs and GPUs that are fast at it). The encoder (the backbone without
its classifier, in medattn's key names) is written to RUN_DIR/encoder.safetensors with RUN_DIR/pretrain.json,
which `init: ssl:RUN_DIR` reads.
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn as nn
from pydantic import Field
from safetensors.torch import save_file

from medattn.data.imageset import ImageSet
from medattn.errors import DataError
from medattn.models.build import build_model
from medattn.models.init import SSL_ENCODER, SSL_RECORD
from medattn.pretrain.contrastive import micle_partners, nt_xent
from medattn.runtime.precision import resolve_precision
from medattn.schema import Strict
from medattn.train.augment import augment, channel_stats
from medattn.train.config import AugmentConfig, StemChoice

logger = logging.getLogger(__name__)


class PretrainConfig(Strict):
    """Backbone, objective and optimisation of one pretraining run."""

    backbone: str = "resnet18"
    stem: StemChoice = "auto"
    method: Literal["simclr", "micle"] = "simclr"
    epochs: int = Field(20, ge=1)
    batch_size: int = Field(128, ge=2)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(1e-6, ge=0)
    temperature: float = Field(0.1, gt=0)
    projection_dim: int = Field(128, ge=8)
    augment: AugmentConfig = Field(default_factory=lambda: AugmentConfig(
        scale=0.25, translate=0.12, brightness=0.4, contrast=0.4, saturation=0.4))
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    device: str = "auto"


def encoder(cfg: PretrainConfig, data: ImageSet) -> nn.Module:
    """The plain backbone for this dataset's channels and size, classifier removed (its output: pooled features)."""
    model = build_model(cfg.backbone, "none", num_classes=2, in_chans=data.in_chans, image_size=data.image_size,
                        stem=cfg.stem)
    spec = model.medattn_spec
    model.reset_classifier(0)
    model.medattn_spec = spec
    return model


def _projection(width: int, dim: int) -> nn.Module:
    return nn.Sequential(nn.Linear(width, width), nn.ReLU(inplace=True), nn.Linear(width, dim))


def pretrain(data: ImageSet, cfg: PretrainConfig, seed: int, out_dir: Path | None) -> dict:
    """Train the encoder contrastively on `data`'s train split; write encoder + record to `out_dir`; return it."""
    model, record = pretrain_encoder(data, cfg, seed)
    if out_dir is not None:
        write_encoder(model, record, Path(out_dir))
    return record


def pretrain_encoder(data: ImageSet, cfg: PretrainConfig, seed: int) -> tuple[nn.Module, dict]:
    """The contrastively trained encoder (on `data`'s train split, labels unused) and the run's record."""
    device = torch.device("cuda" if cfg.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if cfg.device == "auto" else cfg.device))
    torch.manual_seed(seed)
    gen, rng = torch.Generator().manual_seed(seed), np.random.default_rng(seed)
    train = data.indices("train").cpu().numpy()
    if cfg.method == "micle" and data.group is None:
        raise DataError(f"{data.source or data.name}: method micle needs a group column (patient / lesion id); "
                        f"give the loader's group= option or use method simclr")
    groups = data.group[train] if cfg.method == "micle" else np.arange(len(train))
    images = data.images[torch.as_tensor(train)].to(device)
    mean, std = (t.to(device).view(1, -1, 1, 1) for t in channel_stats(images))
    model = encoder(cfg, data).to(device)
    head = _projection(model.num_features, cfg.projection_dim).to(device)
    params = [*model.parameters(), *head.parameters()]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    batch = min(cfg.batch_size, len(train))
    steps = max(1, len(train) // batch)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, cfg.epochs * steps)
    precision = resolve_precision(cfg.precision, device, (cfg.backbone, "none"))
    multi = int((np.unique(groups, return_counts=True)[1] > 1).sum())
    history, start = [], time.perf_counter()
    for epoch in range(1, cfg.epochs + 1):
        model.train(), head.train()
        order = torch.randperm(len(train), generator=gen).numpy()
        partner = micle_partners(groups, rng)
        total = 0.0
        for step in range(steps):
            a = order[step * batch:(step + 1) * batch]
            views = [augment(images[torch.as_tensor(i, device=device)].float().div_(255), cfg.augment, gen)
                     for i in (a, partner[a])]
            with precision.autocast():
                z1, z2 = (head(model((v - mean) / std)) for v in views)
            loss = nt_xent(z1, z2, cfg.temperature)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            total += float(loss.detach())
        history.append({"epoch": epoch, "loss": total / steps})
        logger.info("pretrain epoch %d/%d: loss %.4f", epoch, cfg.epochs, total / steps)
        if not math.isfinite(total):
            raise DataError(f"pretraining diverged at epoch {epoch} (loss {total}); lower lr or raise temperature")
    record = {"config": cfg.model_dump(mode="json"), "seed": seed, "dataset": data.source or data.name,
              "train_images": len(train), "groups_with_several_images": multi, "history": history,
              "stem": model.medattn_spec["stem"], "in_chans": data.in_chans, "image_size": data.image_size,
              "precision": precision.name, "seconds": time.perf_counter() - start}
    return model, record


def write_encoder(model: nn.Module, record: dict, out_dir: Path) -> Path:
    """RUN_DIR/encoder.safetensors (the backbone's weights) and RUN_DIR/pretrain.json; return the weights' path."""
    from medattn.provenance import provenance

    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / SSL_ENCODER
    save_file({k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}, str(path))
    (out_dir / SSL_RECORD).write_text(json.dumps({**record, "provenance": provenance()}, indent=2, default=str))
    return path


@torch.inference_mode()
def features(model: nn.Module, data: ImageSet, split: str, batch_size: int = 256) -> np.ndarray:
    """Pooled backbone features (N, F) of one split, normalised with that dataset's train statistics."""
    mean, std = (t.view(1, -1, 1, 1) for t in channel_stats(data.images[data.indices("train")]))
    idx = data.indices(split)
    model.eval()
    out = []
    for s in range(0, len(idx), batch_size):
        x = data.images[idx[s:s + batch_size]].float().div_(255)
        f = model((x - mean) / std)
        out.append(f.float().reshape(len(x), -1))
    return torch.cat(out).numpy()
