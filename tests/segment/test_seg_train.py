"""Segmentation runs: the planted derm-synth lesions are segmented (Dice >= 0.9 in 5 epochs), a run writes per-image
scores that agree with its metrics.json, and data a segmentation run cannot use gives a one-line DataError."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from medattn.data.dataset_spec import LoadContext, load_dataset
from medattn.data.imageset import ImageSet
from medattn.errors import DataError
from medattn.segment.train import train_segmentation
from medattn.train.config import ModelConfig, TrainConfig

FAST = dict(batch_size=8, lr=3e-3, warmup_epochs=0.2, weight_decay=1e-4, progress=False, device="cpu",
            precision="fp32", augment={"enabled": False})


@pytest.mark.slow
def test_unet_segments_planted_lesions_of_derm_synth():
    """The lesion mask of derm-synth is the ground truth its renderer drew: a plain U-Net finds it (measured test
    Dice 0.938 after 5 epochs on 144 training images of 32 px; about a minute on 2 idle cores)."""
    data = load_dataset("synthetic:derm-synth?n=240&size=32&seed=0&artefacts=none")
    result = train_segmentation(data, ModelConfig(backbone="unet"), TrainConfig(epochs=5, **FAST), 0, None)
    assert result.metrics["test"]["dice"] >= 0.9
    assert result.metrics["test"]["hd95"] < 3  # pixels, on 32 x 32 images


def test_run_writes_per_image_scores_matching_its_metrics(tmp_path):
    data = load_dataset("synthetic:derm-synth?n=40&size=32&seed=1&artefacts=none")
    result = train_segmentation(data, ModelConfig(backbone="unet", attention="gate"), TrainConfig(epochs=1, **FAST),
                                0, tmp_path)
    table = pd.read_csv(tmp_path / result.artifacts["predictions_test"])
    assert len(table) == int((data.split == "test").sum())
    assert set(table.columns) >= {"index", "dice", "iou", "hd95", "asd", "area", "pred_area"}
    stored = json.loads((tmp_path / "metrics.json").read_text())
    assert stored["metrics"]["test"]["dice"] == pytest.approx(table["dice"].mean(), abs=1e-6)
    assert json.loads((tmp_path / "model.json").read_text())["task"] == "segmentation"
    from medattn.segment.gallery import gallery

    png = gallery(tmp_path, tmp_path / "gallery.png", n=2)  # rebuilt from model.json + weights, data re-loaded
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_dataset_without_masks_is_refused_in_one_line():
    data = ImageSet(name="plain", images=torch.zeros(4, 3, 16, 16, dtype=torch.uint8),
                    labels=torch.zeros(4, dtype=torch.int64), class_names=["a"],
                    split=np.array(["train", "train", "val", "test"]))
    with pytest.raises(DataError, match="has no masks, so it cannot be segmented; give a dataset with lesion masks"):
        train_segmentation(data, ModelConfig(backbone="unet"), TrainConfig(epochs=1, **FAST), 0, None)


def _folder(root, mask_values=(0, 255), mask_size=(16, 16)):
    (root / "img").mkdir(parents=True)
    (root / "seg").mkdir()
    for i in range(6):
        Image.fromarray(np.full((16, 16, 3), 40 * i, np.uint8)).save(root / "img" / f"s{i}.png")
        m = np.full(mask_size[::-1], mask_values[0], np.uint8)
        m[2:8, 2:8] = mask_values[-1]
        m[0, 0] = mask_values[len(mask_values) // 2]
        Image.fromarray(m).save(root / "seg" / f"s{i}.png")
    pd.DataFrame({"id": [f"s{i}" for i in range(6)], "label": ["a", "b"] * 3}).to_csv(root / "meta.csv", index=False)
    return (f"folder:{root}?images=img&labels=meta.csv&masks=seg&mask_pattern={{id}}.png&size=16&val=0.2&test=0.2"
            f"&workers=1")


@pytest.mark.parametrize("values", [(0, 255), (0, 1)])
def test_binary_masks_load_as_zero_one(tmp_path, values):
    data = load_dataset(_folder(tmp_path, values), LoadContext(cache_dir=tmp_path / "cache"))
    assert set(torch.unique(data.masks).tolist()) == {0, 1}
    assert int(data.masks[0].sum()) == 36 + 1  # the 6 x 6 box and the corner pixel


def test_grey_mask_values_are_refused_naming_the_file(tmp_path):
    with pytest.raises(DataError, match=r"s0\.png: mask values \{0, 128, 255\} are not binary; save lesion = 255"):
        load_dataset(_folder(tmp_path, (0, 128, 255)), LoadContext(cache_dir=tmp_path / "cache"))


def test_mask_of_another_size_is_refused_naming_the_file(tmp_path):
    with pytest.raises(DataError, match=r"s0\.png: mask is 20x16 but its image .* is 16x16"):
        load_dataset(_folder(tmp_path, mask_size=(20, 16)), LoadContext(cache_dir=tmp_path / "cache"))
