"""The CAM target layer and upsampling as explicit choices, and the reference points every score sits beside.

Expected values: grid sizes of ResNet-18 with the stride-4 stem worked by hand (40 px -> 10, 5, 3, 2 cells);
the oracle and uniform scores of a hand-built square mask; insertion gain = trapezoid AUC minus the first point
of the insertion curve, recomputed from `perturbation_curves`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from medattn.errors import SpecError
from medattn.explain.cam import CAM_METHODS
from medattn.explain.faithfulness import auc, deletion_insertion, perturbation_curves
from medattn.explain.maps import MapSet
from medattn.explain.sample import Sample
from medattn.explain.scoring import faithfulness_rows, localisation_rows, random_maps, through_grid
from medattn.explain.spec import ExplainSpec
from medattn.explain.summary import metric_summary
from medattn.explain.targets import target_layer
from medattn.models import build_model


@pytest.fixture(scope="module")
def resnet40():
    torch.manual_seed(0)
    return build_model("resnet18", "none", num_classes=2, image_size=40, small_stem=False).eval()


def test_auto_takes_the_deepest_stage_at_least_min_grid_and_records_it(resnet40):
    auto = target_layer(resnet40, "resnet18", 40)
    assert (auto.name, auto.grid, auto.coarse) == ("layer2", 5, False)  # 10, 5, 3, 2 cells: layer2 is the last >= 5
    assert target_layer(resnet40, "resnet18", 40, min_grid=3).name == "layer3"
    fallback = target_layer(resnet40, "resnet18", 40, min_grid=20)  # no stage reaches 20: the finest, marked coarse
    assert (fallback.name, fallback.grid, fallback.coarse) == ("layer1", 10, True)


def test_a_named_coarse_layer_is_refused_unless_forced(resnet40):
    with pytest.raises(SpecError, match=r"layer: 'layer4' of resnet18 is a 2x2 grid at 40 px.*force_layer: true"):
        target_layer(resnet40, "resnet18", 40, layer="layer4")
    forced = target_layer(resnet40, "resnet18", 40, layer="layer4", force=True)
    assert (forced.name, forced.grid, forced.coarse) == ("layer4", 2, True)
    fine = target_layer(resnet40, "resnet18", 40, layer="layer1.1.conv2")
    assert (fine.grid, fine.coarse) == (10, False)
    with pytest.raises(SpecError, match="'layer9' is not a module of resnet18; use auto or one of layer1, layer2"):
        target_layer(resnet40, "resnet18", 40, layer="layer9")


def test_nearest_upsampling_gives_one_plateau_per_grid_cell(resnet40):
    x, classes = torch.randn(2, 3, 40, 40), torch.tensor([0, 1])
    layer = target_layer(resnet40, "resnet18", 40, layer="layer3", force=True, upsample="nearest")
    maps = CAM_METHODS["gradcam"].compute(resnet40, layer, x, classes)
    for m in maps:
        assert len(torch.unique(m)) <= 9  # a 3x3 grid: at most nine values
        assert torch.equal(m[:13, :13], m[0, 0].expand(13, 13))  # the top-left cell covers rows/cols 0..13
    bilinear = CAM_METHODS["gradcam"].compute(resnet40, target_layer(resnet40, "resnet18", 40, layer="layer3",
                                                                     force=True), x, classes)
    assert len(torch.unique(bilinear[0])) > 9


def square_sample(n: int = 4, size: int = 20) -> Sample:
    masks = torch.zeros(n, size, size)
    masks[:, 6:12, 6:12] = 1
    return Sample(ids=np.array([str(i) for i in range(n)]), index=np.arange(n), images=torch.zeros(n, 3, size, size),
                  labels=torch.zeros(n, dtype=torch.long), split="test", seed=0, masks=masks)


def test_oracle_random_and_uniform_references_beside_the_maps():
    sample = square_sample()
    flat = MapSet("gradcam", "layer4", "predicted", torch.ones(4, 20, 20) * 0.5, torch.zeros(4, dtype=torch.long),
                  grid=2, coarse=True)
    rows = pd.concat(localisation_rows([flat], sample, ExplainSpec(tolerance=0, top_fraction=0.09)))
    got = rows.groupby(["method", "metric"])["value"].mean()
    assert got["oracle", "energy"] == pytest.approx(1.0) and got["oracle", "iou"] == pytest.approx(1.0)
    assert got["oracle", "pointing"] == 1.0
    assert got["uniform", "energy"] == pytest.approx(36 / 400)
    expected = through_grid(sample.masks, 2, "bilinear")  # the mask averaged onto 2x2 and upsampled
    share = float((expected[0] * sample.masks[0]).sum() / expected[0].sum())
    assert got["oracle_grid", "energy"] == pytest.approx(share, rel=1e-5)
    assert share < 0.2  # a 2x2 grid cannot put saliency on a 6x6 lesion in a 20x20 image
    assert set(rows[rows["method"] == "oracle_grid"]["grid"]) == {2}
    assert set(rows[rows["method"] == "gradcam"]["layer"]) == {"layer4"}
    assert np.isnan(rows[(rows["method"] == "gradcam") & (rows["metric"] == "pointing")]["value"]).all()
    noise = random_maps((4, 20, 20), 2, "nearest", seed=0)
    assert all(len(torch.unique(m)) <= 4 for m in noise)  # drawn on the grid
    assert not torch.equal(noise, random_maps((4, 20, 20), 2, "nearest", seed=1))


def test_summary_counts_nan_scores_per_cell():
    scores = pd.DataFrame({"dataset": "d", "model": "m", "seed": [0, 0, 0, 1, 1, 1], "image_id": list("abcabc"),
                           "method": "gradcam", "target": "predicted", "metric": "pointing",
                           "value": [1.0, np.nan, 0.0, 1.0, np.nan, np.nan], "layer": "layer2", "grid": 5})
    row = metric_summary(scores).iloc[0]
    assert (row["scores"], row["nan"], row["images"]) == (6, 3, 2)  # image b has no value in any seed
    assert row["mean"] == pytest.approx((1.0 + 0.0) / 2) and (row["layer"], row["grid"]) == ("layer2", 5)


def test_summary_interval_stays_in_the_metrics_range():
    from scipy import stats

    hits = [0.0] * 7 + [1.0]  # one pointing hit in 8 images: the t interval's lower bound is below 0
    scores = pd.DataFrame({"dataset": "d", "model": "m", "seed": 0, "image_id": list("abcdefgh"), "method": "gradcam",
                           "target": "predicted", "metric": "pointing", "value": hits, "layer": "layer2", "grid": 5})
    low, high = stats.t.interval(0.95, 7, loc=np.mean(hits), scale=stats.sem(hits))
    assert low < 0
    row = metric_summary(scores).iloc[0]
    assert row["ci_low"] == 0.0 and row["ci_high"] == pytest.approx(high)
    gains = [-1.0] * 7 + [-0.5]  # insertion gain lives in [-1, 1]
    low, high = stats.t.interval(0.95, 7, loc=np.mean(gains), scale=stats.sem(gains))
    gain = metric_summary(scores.assign(metric="insertion_gain", value=gains)).iloc[0]
    assert low < -1 and gain["ci_low"] == -1.0 and gain["ci_high"] == pytest.approx(high)


def test_insertion_gain_is_auc_above_the_start_prediction_and_random_ranking_is_scored(resnet40):
    torch.manual_seed(1)
    x, maps, classes = torch.randn(3, 3, 40, 40), torch.rand(3, 40, 40), torch.tensor([0, 1, 0])
    _, insertion = perturbation_curves(resnet40, x, maps, classes, steps=4)
    got = deletion_insertion(resnet40, x, maps, classes, steps=4)
    torch.testing.assert_close(got["insertion_gain"], auc(insertion) - insertion[:, 0])
    sets = [MapSet("gradcam", "layer2", "predicted", maps, classes, grid=5)]
    rows = pd.concat(faithfulness_rows(resnet40, x, sets, ExplainSpec(steps=4), np.array(list("abc")), classes))
    assert set(rows["method"]) == {"gradcam", "random"}
    assert set(rows["metric"]) == {"deletion_auc", "insertion_auc", "insertion_gain"}
