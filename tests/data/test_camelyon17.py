"""`camelyon17:ROOT` on an own fixture in the WILDS v1.0 layout (metadata.csv + patches/...png)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from medattn.data.camelyon17 import patch_path
from medattn.data.dataset_spec import LoadContext, load_dataset
from medattn.errors import DataError

# (patient, node, center, raw split column value, patches): centres 1 and 2 carry split 0 in the raw column,
# as in the WILDS file, and must still become OOD val / OOD test.
PATIENTS = [("004", 4, 0, 0, 6), ("009", 1, 0, 1, 3), ("012", 0, 3, 0, 5), ("015", 2, 3, 1, 2),
            ("020", 3, 4, 0, 4), ("021", 0, 4, 1, 2), ("030", 2, 1, 0, 5), ("038", 1, 2, 0, 4), ("039", 3, 2, 1, 3)]
# By the WILDS definition: train = centres 0/3/4 with split 0 (6 + 5 + 4), id_val = centres 0/3/4 with split 1
# (3 + 2 + 2), OOD val = centre 1 (5), OOD test = centre 2 (4 + 3).
EXPECTED = {"train": 15, "test": 7, "val": 5, "test_ood": 7}


def make_fixture(root, rows=PATIENTS, drop_column=None, drop_patch=False):
    """Write metadata.csv (unnamed index column first, as WILDS ships it) and one 96 px PNG per row."""
    records, rng = [], np.random.default_rng(0)
    for patient, node, center, split, count in rows:
        for k in range(count):
            x, y = 1000 + 96 * k, 2000 + 32 * k
            tumor = int(k % 2 == 0)
            records.append({"patient": patient, "node": node, "x_coord": x, "y_coord": y, "tumor": tumor,
                            "slide": 5 * center + node, "center": center, "split": split})
            path = root / patch_path(patient, node, x, y)
            path.parent.mkdir(parents=True, exist_ok=True)
            pixels = rng.integers(0, 60, (96, 96, 3)) + (150 if tumor else 60)  # tumour patches brighter
            Image.fromarray(pixels.astype(np.uint8)).save(path)
    table = pd.DataFrame(records)
    table["patient"] = table["patient"].astype(str)
    if drop_column:
        table = table.drop(columns=drop_column)
    table.to_csv(root / "metadata.csv")
    if drop_patch:
        (root / patch_path(*rows[0][:2], 1000, 2000)).unlink()
    return root


@pytest.fixture(scope="module")
def fixture_root(tmp_path_factory):
    return make_fixture(tmp_path_factory.mktemp("camelyon17_v1.0"))


def test_official_splits_domains_and_groups(fixture_root, tmp_path):
    data = load_dataset(f"camelyon17:{fixture_root}?size=32", LoadContext(cache_dir=tmp_path))
    sizes = {s: int((data.split == s).sum()) for s in data.split_names}
    assert sizes == EXPECTED
    centres = {s: sorted(set(data.domain[data.split == s])) for s in data.split_names}
    assert centres == {"train": ["hospital_0", "hospital_3", "hospital_4"],
                       "test": ["hospital_0", "hospital_3", "hospital_4"],
                       "val": ["hospital_1"], "test_ood": ["hospital_2"]}
    assert sorted(set(data.group[data.split == "test"])) == ["patient_009", "patient_015", "patient_021"]
    assert data.images.shape == (34, 3, 32, 32) and data.class_names == ["normal", "tumor"]
    bright = data.images.float().mean((1, 2, 3)) > 150  # the planted brightness follows the tumour label
    assert bright.tolist() == data.labels.bool().tolist()
    again = load_dataset(f"camelyon17:{fixture_root}?size=32", LoadContext(cache_dir=tmp_path))  # from the cache
    assert len(list((tmp_path / "camelyon17").glob("*.npy"))) == 1 and np.array_equal(again.images, data.images)


def test_limit_keeps_a_seeded_subset_per_split(fixture_root):
    data = load_dataset(f"camelyon17:{fixture_root}?limit=3&seed=1", LoadContext())
    assert {s: int((data.split == s).sum()) for s in data.split_names} == {s: 3 for s in EXPECTED}
    assert data.image_size == 96


@pytest.mark.parametrize("broken, message", [
    ({"drop_column": "center"}, "missing column(s) center"),
    ({"drop_patch": True}, "patch_patient_004_node_4_x_1000_y_2000.png not found"),
])
def test_bad_layouts_are_one_line_errors(tmp_path, broken, message):
    root = make_fixture(tmp_path / "c17", rows=PATIENTS[:2], **broken)
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")) as err:
        load_dataset(f"camelyon17:{root}", LoadContext())
    assert "\n" not in str(err.value)
    with pytest.raises(DataError, match="metadata.csv not found"):
        load_dataset(f"camelyon17:{tmp_path}", LoadContext())


def test_report_sets_id_and_ood_accuracy_side_by_side(fixture_root, tmp_path):
    """A trained run on the fixture gets the report's out-of-distribution section (test vs test_ood)."""
    from medattn.report.build import build_report
    from medattn.train.cli import write_run_table
    from medattn.train.config import ModelConfig, TrainConfig
    from medattn.train.loop import train_run

    spec = f"camelyon17:{fixture_root}?size=32"
    data = load_dataset(spec, LoadContext())
    cfg = ModelConfig(backbone="resnet18")
    train = TrainConfig(epochs=1, batch_size=8, progress=False, device="cpu", precision="fp32")
    result = train_run(data, cfg, train, 0, tmp_path)
    assert set(result.metrics) == {"val", "test", "test_ood"}
    write_run_table(tmp_path, spec, data.name, cfg, 0, result, None, None)
    report = build_report(tmp_path)
    text = report.markdown.read_text()
    assert "Out-of-distribution" in text and "test_ood" in text
