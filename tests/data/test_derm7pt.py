"""Derm7pt loader on a small fixture written here in the official release layout (never the real data)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from medattn.data.dataset_spec import LoadContext, load_dataset
from medattn.data.derm7pt import META_COLUMNS
from medattn.errors import DataError

CASES = [  # diagnosis, pigment_network, streaks, pigmentation, regression, dots, veil, vascular
    ("clark nevus", "typical", "absent", "diffuse regular", "absent", "regular", "absent", "absent"),
    ("melanoma (less than 0.76 mm)", "atypical", "irregular", "localized irregular", "white areas", "irregular",
     "present", "dotted"),
    ("basal cell carcinoma", "absent", "absent", "absent", "absent", "absent", "absent", "arborizing"),
    ("seborrheic keratosis", "absent", "absent", "absent", "absent", "absent", "absent", "hairpin"),
    ("dermatofibroma", "typical", "absent", "absent", "absent", "absent", "absent", "absent"),
    ("melanoma metastasis", "absent", "regular", "diffuse irregular", "combinations", "absent", "present",
     "linear irregular"),
    ("reed or spitz nevus", "typical", "regular", "absent", "absent", "regular", "absent", "absent"),
    ("lentigo", "typical", "absent", "diffuse regular", "absent", "absent", "absent", "absent"),
]


def write_fixture(root, columns=META_COLUMNS) -> None:
    """A Derm7pt-shaped release: meta/meta.csv with the official columns, split files, images in subfolders."""
    (root / "meta").mkdir(parents=True)
    rows = []
    for i, (diag, pn, st, pig, reg, dag, bwv, vs) in enumerate(CASES):
        folder = "Nel" if i % 2 else "Fal"
        rows.append({"case_num": i + 1, "diagnosis": diag, "seven_point_score": i % 5, "pigment_network": pn,
                     "streaks": st, "pigmentation": pig, "regression_structures": reg, "dots_and_globules": dag,
                     "blue_whitish_veil": bwv, "vascular_structures": vs, "level_of_diagnostic_difficulty": "low",
                     "elevation": "flat", "location": "back", "sex": "female" if i % 2 else "male",
                     "management": "excision", "clinic": f"{folder}/{folder}{i:03d}.jpg",
                     "derm": f"{folder}/{folder}{i:03d}_d.jpg", "case_id": f"{folder.upper()}{i:03d}", "notes": ""})
    pd.DataFrame(rows)[list(columns)].to_csv(root / "meta" / "meta.csv", index=False)
    for name, idx in (("train", [0, 1, 2, 3]), ("valid", [4, 5]), ("test", [6, 7])):
        pd.DataFrame({"indexes": idx}).to_csv(root / "meta" / f"{name}_indexes.csv", index=False)
    rng = np.random.default_rng(0)
    for row in rows:
        for col in ("clinic", "derm"):
            path = root / "images" / row[col]
            if row["case_num"] == 3 and col == "derm":  # the release has a path whose case differs from the file
                path = path.with_name(path.name.upper())
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)).save(path)


def test_fixture_loads_with_official_split_labels_and_criteria(tmp_path):
    write_fixture(tmp_path / "release_v0")
    data = load_dataset(f"derm7pt:{tmp_path / 'release_v0'}?size=32", LoadContext(cache_dir=tmp_path / "cache"))
    assert data.class_names == ["BCC", "NEV", "MEL", "MISC", "SK"]
    assert data.labels.tolist() == [1, 2, 0, 4, 3, 2, 1, 3]
    assert data.split.tolist() == ["train"] * 4 + ["val"] * 2 + ["test"] * 2
    assert tuple(data.images.shape) == (8, 3, 32, 32)
    c = data.concepts
    assert c.index.tolist() == [str(i) for i in range(1, 9)]
    assert c["atypical_pigment_network"].tolist() == [0, 1, 0, 0, 0, 0, 0, 0]
    assert c["atypical_vascular"].tolist() == [0, 1, 0, 0, 0, 1, 0, 0]
    assert c["irregular_pigmentation"].tolist() == [0, 1, 0, 0, 0, 1, 0, 0]
    assert c["regression_structures"].tolist() == [0, 1, 0, 0, 0, 1, 0, 0]
    assert c["irregular_streaks"].tolist() == [0, 1, 0, 0, 0, 0, 0, 0]
    assert c["sex"].tolist()[:2] == ["male", "female"]
    again = load_dataset(f"derm7pt:{tmp_path / 'release_v0'}?size=32", LoadContext(cache_dir=tmp_path / "cache"))
    assert (again.images == data.images).all() and len(list((tmp_path / "cache" / "derm7pt").iterdir())) == 1


def test_clinic_images_and_melanoma_labels(tmp_path):
    write_fixture(tmp_path / "r")
    data = load_dataset(f"derm7pt:{tmp_path / 'r'}?image=clinic&labels=melanoma&size=28", LoadContext())
    assert data.class_names == ["other", "melanoma"] and data.labels.tolist() == [0, 1, 0, 0, 0, 1, 0, 0]


def test_wrong_layout_names_the_missing_column(tmp_path):
    write_fixture(tmp_path / "r", columns=[c for c in META_COLUMNS if c != "blue_whitish_veil"])
    with pytest.raises(DataError, match=r"meta\.csv: missing column 'blue_whitish_veil'") as err:
        load_dataset(f"derm7pt:{tmp_path / 'r'}", LoadContext())
    assert "\n" not in str(err.value)


def test_missing_image_and_unknown_option_are_one_line_errors(tmp_path):
    write_fixture(tmp_path / "r")
    next((tmp_path / "r" / "images" / "Fal").glob("*_d.jpg")).unlink()
    with pytest.raises(DataError, match="column 'derm': 1 image"):
        load_dataset(f"derm7pt:{tmp_path / 'r'}", LoadContext())
    with pytest.raises(DataError, match="unknown option"):
        load_dataset(f"derm7pt:{tmp_path / 'r'}?colour=1", LoadContext())
