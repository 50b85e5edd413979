"""Which maps and masks each score is computed on: artefact energy on the artefact masks (not the lesion mask),
the randomisation Spearman between the trained model's map and the randomised model's map (not the map itself).

Expected values come from numpy and scipy.stats.spearmanr on the same inputs, or from planted relations
(a map that reverses the randomised map has Spearman -1).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from scipy.stats import spearmanr

from medattn.explain.maps import MapSet, RunMaps, cam_sets
from medattn.explain.sample import Sample
from medattn.explain.scoring import localisation_rows, randomisation_rows
from medattn.explain.spec import ExplainSpec
from medattn.models import build_model


def value(rows, method: str, metric: str) -> dict[str, float]:
    """{image_id: value} of one method and metric in a list of tidy score frames."""
    table = pd.concat(rows)
    picked = table[(table["method"] == method) & (table["metric"] == metric)]
    return dict(zip(picked["image_id"], picked["value"], strict=True))


def test_artefact_energy_is_the_share_of_saliency_on_the_artefact_masks():
    rng = np.random.default_rng(0)
    maps = rng.random((3, 6, 6)).astype(np.float32)
    lesion = np.zeros((3, 6, 6), bool)
    lesion[:, 1:4, 1:4] = True
    ruler, patch = np.zeros((3, 6, 6), bool), np.zeros((3, 6, 6), bool)
    ruler[0, 5, :] = True  # image 0: a ruler along the bottom row and a patch in a corner
    patch[0, 0:2, 4:6] = True
    patch[1, 4:6, 0:2] = True  # image 1: a patch only; image 2: no artefact (no artefact score)
    sample = Sample(ids=np.array(["a", "b", "c"]), index=np.arange(3), images=torch.zeros(3, 1, 6, 6),
                    labels=torch.zeros(3, dtype=torch.long), split="test", seed=0, masks=torch.from_numpy(lesion),
                    artefact_masks={"ruler": torch.from_numpy(ruler), "patch": torch.from_numpy(patch)})
    sets = [MapSet("gradcam", "layer4", "predicted", torch.from_numpy(maps), torch.zeros(3, dtype=torch.long))]
    rows = localisation_rows(sets, sample, ExplainSpec())

    union = ruler | patch
    expected = {i: float((maps[k] * union[k]).sum() / maps[k].sum()) for k, i in enumerate("ab")}
    got = value(rows, "gradcam", "artefact_energy")
    assert got.keys() == {"a", "b"}
    np.testing.assert_allclose([got[i] for i in "ab"], [expected[i] for i in "ab"], rtol=1e-5)
    uniform = value(rows, "uniform", "artefact_energy")  # the artefacts' area share: 6 + 4 and 4 of 36 pixels
    np.testing.assert_allclose([uniform["a"], uniform["b"]], [10 / 36, 4 / 36], rtol=1e-6)
    lesion_energy = value(rows, "gradcam", "energy")
    np.testing.assert_allclose([lesion_energy[i] for i in "abc"],
                               [(maps[k] * lesion[k]).sum() / maps[k].sum() for k in range(3)], rtol=1e-5)


def test_randomisation_spearman_compares_the_map_with_the_randomised_models_map():
    torch.manual_seed(0)
    random_model = build_model("resnet18", "none", num_classes=2, image_size=32).eval()
    x = torch.randn(3, 3, 32, 32)
    classes = torch.tensor([0, 1, 1])
    spec = ExplainSpec(methods=["gradcam"], batch_size=8)
    (rand,) = cam_sets(random_model, "resnet18", x, {"predicted": classes}, ["gradcam"], 8)
    noise = torch.rand(3, 32, 32)
    reverse = rand.maps.max() - rand.maps  # ranks every pixel the other way round: Spearman -1
    scipy = [spearmanr(noise[i].flatten(), rand.maps[i].flatten()).statistic for i in range(3)]
    for maps, expected in ((reverse, [-1.0, -1.0, -1.0]), (noise, scipy)):
        run = RunMaps(probs=torch.full((3, 2), 0.5), predicted=classes,
                      sets=[MapSet("gradcam", rand.layer, "predicted", maps, classes)])
        got = value(randomisation_rows(random_model, "resnet18", x, run, spec, np.array(["a", "b", "c"])),
                    "gradcam", "randomisation_spearman")
        np.testing.assert_allclose([got[i] for i in "abc"], expected, atol=1e-5)
