"""`task: segmentation` through the study machinery: a dataset without masks is refused at its YAML line (exit 2
from the CLI), masks with grey values or another size stop `medattn segment train` in one line with exit 2,
and a tiny study runs end to end into a report whose primary metric is Dice, with a gallery (slow)."""

from __future__ import annotations

import re
import sys

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from medattn.errors import SpecError
from medattn.study.plan import make_plan, validate_plan
from medattn.study.spec import load_spec

SPEC = """name: seg
task: segmentation
datasets:
  - spec: {data}
    name: tiny
models:
  grid:
    backbones: [unet]
    attentions: [gate]
train: {{epochs: 1, batch_size: 8, precision: fp32, device: cpu, augment: {{enabled: false}}}}
tuning: {{trials: 0}}
seeds: 2
output: {out}
"""


def _folder_without_masks(root):
    (root / "img").mkdir(parents=True)
    for i in range(10):
        Image.fromarray(np.full((16, 16, 3), 20 * i, np.uint8)).save(root / "img" / f"s{i}.png")
    pd.DataFrame({"id": [f"s{i}" for i in range(10)], "label": ["a", "b"] * 5}).to_csv(root / "m.csv", index=False)
    return f"folder:{root}?images=img&labels=m.csv&size=16&workers=1"


def test_segmentation_spec_on_a_dataset_without_masks_names_the_line(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text(SPEC.format(data=_folder_without_masks(tmp_path / "d"), out=tmp_path / "out"))
    spec = load_spec(path)
    with pytest.raises(SpecError, match=r"spec\.yaml:4: datasets\[0\]\.spec: dataset 'tiny': .* has no masks, so "
                                        r"it cannot be segmented"):
        validate_plan(make_plan(spec))


def test_segment_train_without_masks_exits_2_with_one_line(tmp_path, monkeypatch, capsys):
    from medattn.cli import main

    monkeypatch.setattr(sys, "argv", ["medattn", "segment", "train", "--data", _folder_without_masks(tmp_path / "d"),
                                      "--out", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache")])
    with pytest.raises(SystemExit) as exit_info:
        main()
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and len(err.splitlines()) == 1 and "has no masks" in err


def _folder_with_masks(root, mask_values, mask_size):
    (root / "img").mkdir(parents=True)
    (root / "seg").mkdir()
    for i in range(6):
        Image.fromarray(np.full((16, 16, 3), 40 * i, np.uint8)).save(root / "img" / f"s{i}.png")
        mask = np.zeros(mask_size[::-1], np.uint8)
        mask[2:8, 2:8] = mask_values[-1]
        mask[0, 0] = mask_values[0]
        Image.fromarray(mask).save(root / "seg" / f"s{i}.png")
    pd.DataFrame({"id": [f"s{i}" for i in range(6)], "label": ["a", "b"] * 3}).to_csv(root / "m.csv", index=False)
    return f"folder:{root}?images=img&labels=m.csv&masks=seg&mask_pattern={{id}}.png&size=16&workers=1"


@pytest.mark.parametrize(("values", "size", "message"), [
    ((128, 255), (16, 16), r"s0\.png: mask values \{0, 128, 255\} are not binary; save lesion = 255"),
    ((0, 255), (20, 16), r"s0\.png: mask is 20x16 but its image .*s0\.png is 16x16; a mask must have its image's"),
])
def test_segment_train_on_bad_masks_exits_2_with_one_line(tmp_path, monkeypatch, capsys, values, size, message):
    from medattn.cli import main

    data = _folder_with_masks(tmp_path / "d", values, size)
    monkeypatch.setattr(sys, "argv", ["medattn", "segment", "train", "--data", data, "--epochs", "1",
                                      "--out", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache")])
    with pytest.raises(SystemExit) as exit_info:
        main()
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and len(err.splitlines()) == 1 and err.startswith("error: ")
    assert re.search(message, err)
    assert not (tmp_path / "out" / "metrics.json").exists()


@pytest.mark.slow
def test_tiny_segmentation_study_reports_dice_comparisons(tmp_path):
    from medattn.rundir.layout import RESULTS_CSV
    from medattn.rundir.writer import write_results
    from medattn.study.engine import Engine
    from medattn.study.hooks import after_study
    from medattn.study.results import collect_results
    from medattn.study.worker import run_worker

    path = tmp_path / "spec.yaml"
    path.write_text(SPEC.format(data="synthetic:derm-synth?n=40&size=32&artefacts=none", out=tmp_path / "out"))
    plan = make_plan(load_spec(path))
    validate_plan(plan)
    assert run_worker(plan).exit_code == 0
    write_results(collect_results(plan, Engine(plan).storage), plan.out_dir / RESULTS_CSV)
    after_study(plan.spec, plan.out_dir)  # writes study.json and builds the report, as `medattn study run` does
    comparisons = pd.read_csv(tmp_path / "out" / "report" / "comparisons.csv")
    dice = comparisons[(comparisons["metric"] == "dice") & (comparisons["model"] == "unet+gate")
                       & (comparisons["split"] == "test")]
    assert len(dice) == 1 and dice["reference"].item() == "unet" and dice["n"].item() == 2
    report = (tmp_path / "out" / "report" / "report.md").read_text()
    assert "Primary metric: dice" in report and "### Dice by lesion size" in report
    assert "### Segmentation gallery" in report and "Gallery not drawn" not in report
    assert "lacks columns" not in report  # no classification bootstrap over segmentation prediction files
    assert "(px)" in report and "(%)" in report.split("HD95")[0]  # surface distances in pixels, Dice in percent
    results = pd.read_csv(tmp_path / "out" / "results.csv")
    hd95 = results.query("split == 'test' and metric == 'hd95' and model == 'unet' and stage == 'final'")["value"]
    assert len(hd95) == 2 and f"{hd95.mean():.1f} ± {hd95.std():.1f}" in report  # pixels as they are, not x100
    pngs = sorted(p.name for p in (tmp_path / "out" / "report" / "figures").glob("*seg-gallery*.png"))
    assert pngs == ["tiny-seg-gallery-unet-gate.png", "tiny-seg-gallery-unet.png"]  # the variant and plain U-Net
