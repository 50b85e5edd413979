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


def _management(diagnosis: str, i: int) -> str:
    """As in the release, every melanoma was excised; the other lesions were excised or followed up (so the
    feature varies within one label group only, issue 28 item 7)."""
    return "excision" if diagnosis.startswith("melanoma") or i % 2 else "clinical follow up"


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
                     "management": _management(diag, i), "clinic": f"{folder}/{folder}{i:03d}.jpg",
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


# -- issue 28: what a new user meets on the real release ------------------------------------------------------


def _white_inside_black_border(path, width=60, height=40, border=5) -> None:
    """A lossless picture (PNG bytes under the release's .jpg name): white, with a black frame `border` wide."""
    pixels = np.zeros((height, width, 3), np.uint8)
    pixels[border:height - border, border:width - border] = 255
    Image.fromarray(pixels).save(path, format="PNG")


def _derm_path(root, case_index: int):
    """The dermoscopic image file of the fixture's row `case_index` (the one the loader reads by default)."""
    meta = pd.read_csv(root / "meta" / "meta.csv", dtype=str)
    rel = meta.loc[case_index, "derm"]
    return next(p for p in (root / "images").rglob("*") if p.relative_to(root / "images").as_posix().lower()
                == rel.lower())


def test_data_info_names_the_cache_the_loader_wrote(tmp_path):
    """Item 2: `data info` said 'cache: none (loaded directly)' although derm7pt had written its .npy cache."""
    from typer.testing import CliRunner

    from medattn.cli import app

    write_fixture(tmp_path / "release_v0")
    cache = tmp_path / "cache"
    done = CliRunner().invoke(app, ["data", "info", f"derm7pt:{tmp_path / 'release_v0'}?size=16",
                                    "--cache-dir", str(cache)])
    assert done.exit_code == 0, done.output
    written = list((cache / "derm7pt").glob("*.npy"))
    assert len(written) == 1
    line = next(t for t in done.output.splitlines() if t.startswith("cache: "))
    assert line.startswith(f"cache: {written[0]} (")  # 8 x 3 x 16 x 16 bytes plus the npy header: 0.0 MB
    assert load_dataset(f"derm7pt:{tmp_path / 'release_v0'}?size=16",
                        LoadContext(cache_dir=cache)).cache_path == str(written[0])


def test_a_corrupt_image_is_excluded_by_case_never_by_deleting_its_row(tmp_path):
    """Item 3: the advice was 'drop its row from the labels CSV', which shifts every later case to another split
    (the split files list row numbers). Now: replace the file or exclude=CASE; the other cases keep their split."""
    root = tmp_path / "r"
    write_fixture(root)
    _derm_path(root, 4).write_bytes(b"not an image")  # row 4 is case_num 5, in the valid split
    with pytest.raises(DataError) as err:
        load_dataset(f"derm7pt:{root}?size=16", LoadContext())
    message = str(err.value)
    assert "exclude=5" in message and "do not delete its row" in message and "\n" not in message
    assert "drop its row" not in message
    data = load_dataset(f"derm7pt:{root}?size=16&exclude=5", LoadContext())
    assert data.concepts.index.tolist() == ["1", "2", "3", "4", "6", "7", "8"]
    assert data.split.tolist() == ["train"] * 4 + ["val"] + ["test"] * 2  # as released, case 5 missing
    assert data.labels.tolist() == [1, 2, 0, 4, 2, 1, 3]
    with pytest.raises(DataError, match="exclude names case_num 99"):
        load_dataset(f"derm7pt:{root}?size=16&exclude=5,99", LoadContext())


def test_parent_folder_points_at_the_release_inside_it(tmp_path):
    """Item 4: pointing derm7pt: at the folder that holds release_v0 said only 'meta/meta.csv not found'."""
    write_fixture(tmp_path / "derm7pt" / "release_v0")
    with pytest.raises(DataError) as err:
        load_dataset(f"derm7pt:{tmp_path / 'derm7pt'}?size=16", LoadContext())
    assert f"'derm7pt:{tmp_path / 'derm7pt' / 'release_v0'}?size=16'" in str(err.value)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match=r"meta\.csv: not found"):  # nothing below: the plain message
        load_dataset(f"derm7pt:{empty}", LoadContext())


def test_criteria_are_concepts_and_case_facts_metadata(tmp_path):
    """Item 8: the seven criteria were labelled 'metadata' in the feature analysis (usage.csv's kind column)."""
    from medattn.analysis.features import build_feature_table

    write_fixture(tmp_path / "r")
    data = load_dataset(f"derm7pt:{tmp_path / 'r'}?size=16", LoadContext())
    criteria = ["atypical_pigment_network", "blue_whitish_veil", "atypical_vascular", "irregular_streaks",
                "irregular_pigmentation", "irregular_dots_globules", "regression_structures"]
    assert {c: data.feature_kinds[c] for c in criteria} == dict.fromkeys(criteria, "concept")
    facts = ["level_of_diagnostic_difficulty", "elevation", "location", "sex", "management"]
    assert {c: data.feature_kinds[c] for c in facts} == dict.fromkeys(facts, "metadata")
    source = build_feature_table(data, abcd=False).source  # the fixture's varying columns (constant ones skipped)
    assert source["atypical_pigment_network"] == "concept" and source["blue_whitish_veil"] == "concept"
    assert source["sex"] == "metadata" and source["management"] == "metadata"
    melanoma = data.labels.numpy() == 2
    assert set(data.concepts["management"][melanoma]) == {"excision"}  # one level within the melanomas
    assert data.concepts["management"][~melanoma].nunique() == 2
    sub = data.subset(np.arange(3))
    assert sub.feature_kinds == data.feature_kinds


def test_fit_and_border_give_the_official_crop_pad_or_stretch(tmp_path):
    """Item 9: images were always stretched. A 60 x 40 white picture in a 5-pixel black frame: border=5 (the
    official recipe cuts 25 from 768 x 512) removes the frame; pad keeps the aspect with black bars above and
    below (50 x 30 -> 10 x 6 plus 2 rows each side); crop keeps the centre square."""
    root = tmp_path / "r"
    write_fixture(root)
    _white_inside_black_border(_derm_path(root, 0))
    ctx = LoadContext(cache_dir=tmp_path / "cache")

    def first(options: str) -> np.ndarray:
        return load_dataset(f"derm7pt:{root}?size=10&{options}", ctx).images[0, 0].numpy().astype(int)

    stretched = first("fit=stretch")
    assert stretched[0, 0] < 60 and stretched[5, 5] > 240  # the frame shows at the edge
    assert (first("border=5") >= 250).all()  # default fit (stretch) after the cut: white everywhere
    padded = first("border=5&fit=pad")
    assert (padded[[0, 1, 8, 9]] <= 5).all() and (padded[3:7] >= 250).all()
    assert (first("border=5&fit=crop") >= 250).all()
    cropped_frame = first("fit=crop")  # centre 40 x 40 of the framed picture: frame rows at top and bottom
    assert cropped_frame[0, 5] < 60 and cropped_frame[5, 5] > 240
    with pytest.raises(DataError, match="border=20 leaves nothing"):
        load_dataset(f"derm7pt:{root}?size=10&border=20", LoadContext())
    with pytest.raises(DataError, match="fit=squash not allowed"):
        load_dataset(f"derm7pt:{root}?fit=squash", LoadContext())


def test_border_is_scaled_with_jpeg_draft_decoding(tmp_path):
    """A large JPEG is decoded at 1/8 scale for a small target; the border must shrink with it (else border=50
    would cut a 50 x 38 draft to nothing or leave the frame)."""
    root = tmp_path / "r"
    write_fixture(root)
    pixels = np.zeros((300, 400, 3), np.uint8)
    pixels[50:250, 50:350] = 255
    Image.fromarray(pixels).save(_derm_path(root, 0), format="JPEG", quality=95)
    others = ",".join(str(i) for i in range(2, 9))  # the other fixture images are 40 x 30
    image = load_dataset(f"derm7pt:{root}?size=16&border=50&exclude={others}", LoadContext()).images[0]
    image = image.numpy().astype(int)
    assert image.min() > 200
