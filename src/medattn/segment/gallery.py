"""A gallery of a trained segmentation run on a fixed sample: image, truth and prediction outlines, gate map.

The sample is the first `n` images of a split in dataset order (the same for every run of a dataset, so
galleries of two models show the same images). Each row: the image with the true lesion outline (green), the
predicted one (magenta, probability > 0.5) and the image's Dice; the lesion probability; for `gate` and `canet`
models the finest attention gate's coefficients (the gate just before the output, up-sampled to image size).
Nothing is trained: the weights are the run's `model.safetensors`, the data are re-loaded from the spec in its
`model.json` (or given, when a report draws several runs of one dataset).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from medattn.data.dataset_spec import LoadContext, load_dataset
from medattn.data.imageset import ImageSet
from medattn.data.masks import require_masks
from medattn.errors import DataError
from medattn.rundir import layout
from medattn.segment.gate import AttentionGate
from medattn.segment.metrics import overlap_scores
from medattn.segment.train import make_segmenter
from medattn.segment.unet import set_recording
from medattn.train.checkpoint import load_checkpoint
from medattn.train.config import ModelConfig


@torch.inference_mode()
def gallery_figure(run_dir: Path, split: str = "test", n: int = 6, ctx: LoadContext | None = None,
                   data: ImageSet | None = None) -> Figure:
    """The gallery of the run in `run_dir` on the first `n` images of `split` (its own data re-loaded unless
    `data`, the same dataset already loaded, is given)."""
    state, sidecar = _checkpoint(run_dir)
    if data is None:
        data = load_dataset(sidecar["data"]["source"], ctx or LoadContext.from_env())
    require_masks(data, str(run_dir), splits=(split,))
    model = make_segmenter(ModelConfig(**sidecar["model"]), data)
    model.load_state_dict(state)
    model.eval()
    set_recording(model)
    idx = data.indices(split)[:n]
    mean, std = (torch.tensor(sidecar["data"][k]).view(1, -1, 1, 1) for k in ("mean", "std"))
    x = (data.images[idx].float() / 255 - mean) / std
    prob = model(x).float().softmax(1)[:, 1].numpy()
    gates = [m.last_map for m in model.modules() if isinstance(m, AttentionGate) and m.last_map is not None]
    gate = None if not gates else torch.nn.functional.interpolate(gates[-1].float(), size=x.shape[-2:],
                                                                    mode="bilinear").numpy()[:, 0]
    return _draw(data.images[idx].numpy(), data.masks[idx].numpy(), prob, gate,
                 f"{sidecar['model']['backbone']}+{sidecar['model']['attention']}, {split}")


def run_data(run_dir: Path, ctx: LoadContext | None = None) -> ImageSet:
    """The dataset a segmentation run was trained on, re-loaded from the spec in its sidecar."""
    return load_dataset(_checkpoint(run_dir)[1]["data"]["source"], ctx or LoadContext.from_env())


def _checkpoint(run_dir: Path) -> tuple[dict, dict]:
    path = Path(run_dir) / layout.CHECKPOINT
    if not path.is_file():
        raise DataError(f"{run_dir}: no {layout.CHECKPOINT}; give the folder of a finished segmentation run")
    state, sidecar = load_checkpoint(path)
    if sidecar.get("task") != "segmentation":
        raise DataError(f"{run_dir}: not a segmentation run (its {layout.SIDECAR} has no task: segmentation)")
    return state, sidecar


def gallery(run_dir: Path, out: Path, split: str = "test", n: int = 6, ctx: LoadContext | None = None) -> Path:
    """Draw the gallery of the run in `run_dir` on the first `n` images of `split` into `out` (PNG); return it."""
    fig = gallery_figure(run_dir, split, n, ctx)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=80)
    return out


def _draw(images: np.ndarray, truth: np.ndarray, prob: np.ndarray, gate: np.ndarray | None, title: str) -> Figure:
    cols = 3 if gate is not None else 2
    dice = overlap_scores(prob > 0.5, truth)["dice"]  # (N, H, W) masks, as the run scored them
    fig = Figure(figsize=(2.2 * cols, 2.2 * len(images)))
    FigureCanvasAgg(fig)
    for i in range(len(images)):
        rgb = images[i].transpose(1, 2, 0) if images.shape[1] == 3 else images[i, 0]
        ax = fig.add_subplot(len(images), cols, cols * i + 1)
        ax.imshow(rgb, cmap=None if images.shape[1] == 3 else "gray")
        ax.contour(truth[i], levels=[0.5], colors="lime", linewidths=1)
        if (prob[i] > 0.5).any():
            ax.contour(prob[i] > 0.5, levels=[0.5], colors="magenta", linewidths=1)
        ax.text(0.02, 0.02, f"Dice {dice[i]:.2f}", transform=ax.transAxes, fontsize=7, color="white",
                bbox={"facecolor": "black", "alpha": 0.6, "pad": 1, "linewidth": 0})
        panels = [("lesion probability", prob[i])] + ([("finest gate", gate[i])] if gate is not None else [])
        for k, (name, arr) in enumerate(panels, start=2):
            sub = fig.add_subplot(len(images), cols, cols * i + k)
            sub.imshow(arr, vmin=0, vmax=1, cmap="viridis")
            if i == 0:
                sub.set_title(name, fontsize=8)
        if i == 0:
            ax.set_title(f"{title}\ntruth (green), prediction (magenta)", fontsize=8)
        for a in fig.axes[-cols:]:
            a.set_axis_off()
    fig.tight_layout()
    return fig

