"""Tests of the image-folder + CSV loader: real HAM10000, and small synthetic folders for every error."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from medattn.data import folder as folder_mod
from medattn.data.dataset_spec import DataSpec, LoadContext
from medattn.data.folder import grouped_split, load_folder
from medattn.errors import DataError

HAM_OPTIONS = {"images": "images", "labels": "HAM10000_metadata.csv", "id": "image_id", "label": "dx",
               "group": "lesion_id", "masks": "masks", "mask_pattern": "{id}_segmentation.png"}
HAM_COUNTS = {"nv": 6705, "mel": 1113, "bkl": 1099, "bcc": 514, "akiec": 327, "vasc": 142, "df": 115}


def shared_data() -> Path:
    """The shared real-data folder (MEDATTN_SHARED_DATA or <repo>/../shared/data); fails if absent."""
    path = Path(os.environ.get("MEDATTN_SHARED_DATA") or Path(__file__).resolve().parents[2] / ".." / "shared"
                / "data")
    if not (path / "ham10000" / "HAM10000_metadata.csv").is_file():
        pytest.fail(f"real data not found at {path}/ham10000: set MEDATTN_SHARED_DATA to the shared data "
                    f"folder (see shared/data/README.md)")
    return path


def load(root: Path | str, cache: Path | None, **options: object) -> object:
    """Load a folder spec with the given options and cache folder."""
    spec = DataSpec("folder", str(root), {k: str(v) for k, v in options.items()})
    return load_folder(spec, LoadContext(cache_dir=cache))


def load_error(root: Path | str, cache: Path | None = None, **options: object) -> str:
    """The one-line DataError message a load raises."""
    with pytest.raises(DataError) as info:
        load(root, cache, **options)
    message = str(info.value)
    assert "\n" not in message
    return message


# --------------------------------------------------------------------------------------- HAM10000
@pytest.fixture(scope="module")
def ham(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """HAM10000 loaded once (decoded into a module-scoped cache)."""
    root = shared_data() / "ham10000"
    cache = tmp_path_factory.mktemp("ham_cache")
    return {"root": root, "cache": cache, "data": load(root, cache, **HAM_OPTIONS)}


def test_ham10000_loads_all_images_masks_and_classes(ham: dict) -> None:
    ds = ham["data"]
    assert ds.images.shape == (10015, 3, 64, 64) and ds.images.dtype == torch.uint8
    assert ds.masks.shape == (10015, 64, 64) and ds.masks.dtype == torch.uint8
    assert torch.bincount(ds.masks.flatten()).tolist()[0] > 0 and int(ds.masks.max()) == 1
    counts = dict(zip(ds.class_names, torch.bincount(ds.labels).tolist(), strict=True))
    assert counts == HAM_COUNTS
    assert ds.class_names == sorted(HAM_COUNTS)
    assert list(ds.concepts.columns) == ["dx_type", "age", "sex", "localization"]
    assert ds.concepts.index.name == "image_id" and ds.concepts.index[0] == "ISIC_0027419"
    assert Path(ds.cache_path).is_dir() and ds.name == "ham10000"


def test_ham10000_split_is_grouped_and_stratified(ham: dict) -> None:
    ds = ham["data"]
    splits = {s: set(ds.group[ds.split == s]) for s in ("train", "val", "test")}
    assert not splits["train"] & splits["val"] and not splits["train"] & splits["test"]
    assert not splits["val"] & splits["test"]
    overall = np.bincount(ds.labels.numpy(), minlength=7) / len(ds.labels)
    for name, fraction in (("train", 0.70), ("val", 0.15), ("test", 0.15)):
        assert abs((ds.split == name).mean() - fraction) < 0.01
        counts = np.asarray(ds.class_counts(name))
        assert np.abs(counts / counts.sum() - overall).max() < 0.01, (name, counts)


def lesion_contrast(grey: torch.Tensor, masks: torch.Tensor) -> float:
    """Mean over images of (grey level outside the mask - inside it), images with a partial mask only."""
    m = masks.float()
    area = m.sum((1, 2))
    inside = (grey * m).sum((1, 2)) / area.clamp(min=1)
    outside = (grey.sum((1, 2)) - inside * area) / (m[0].numel() - area).clamp(min=1)
    partial = (area > 50) & (area < m[0].numel() - 50)
    return float((outside - inside)[partial].mean())


def test_ham10000_masks_cover_the_darker_lesion(ham: dict) -> None:
    """Masks are aligned with their own images: the lesion under the mask is darker than the skin around.

    Lesions sit near the centre, so even a wrong mask shows some contrast; the aligned one shows much more.
    """
    ds = ham["data"]
    grey, masks = ds.images[::3].float().mean(1), ds.masks[::3]
    aligned = lesion_contrast(grey, masks)
    assert aligned > 35
    for wrong in (masks.roll(1, dims=0), masks.flip(1), masks.flip(2)):
        assert aligned > 1.3 * lesion_contrast(grey, wrong)


def test_ham10000_cached_load_decodes_nothing_and_is_identical(ham: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_decoding(*args: object) -> None:
        pytest.fail("an image was decoded although the cache is valid")

    monkeypatch.setattr(folder_mod, "decode_all", no_decoding)
    monkeypatch.setattr(folder_mod.Image, "open", no_decoding)
    again = load(ham["root"], ham["cache"], **HAM_OPTIONS)
    first = ham["data"]
    assert again.cache_path == first.cache_path
    assert torch.equal(again.images, first.images) and torch.equal(again.masks, first.masks)
    assert (again.split == first.split).all()


def test_ham10000_subset_other_seed_changes_split_not_images(ham: dict, tmp_path: Path) -> None:
    """A CSV subset with absolute paths loads real JPEGs; another seed gives another grouped split."""
    table = pd.read_csv(ham["root"] / "HAM10000_metadata.csv").iloc[:300]
    table.to_csv(tmp_path / "subset.csv", index=False)
    opts = {**HAM_OPTIONS, "images": ham["root"] / "images", "masks": ham["root"] / "masks",
            "labels": "subset.csv", "size": 32}
    a, b = load(tmp_path, None, **opts), load(tmp_path, None, **opts, seed=1)
    assert a.images.shape == (300, 3, 32, 32) and torch.equal(a.images, b.images)
    assert (a.split != b.split).any()
    full = ham["data"]
    assert abs(float(a.images.float().mean()) - float(full.images[:300].float().mean())) < 2


# ------------------------------------------------------------------------------- synthetic folders
def make_folder(root: Path, n: int = 12, size: tuple[int, int] = (64, 32), masks: bool = False,
                rows: dict | None = None) -> pd.DataFrame:
    """Write n PNGs (solid colour + a white box), optional box masks, and meta.csv; return the table."""
    rng = np.random.default_rng(0)
    (root / "img").mkdir(parents=True)
    if masks:
        (root / "seg").mkdir()
    w, h = size
    for i in range(n):
        arr = np.zeros((h, w, 3), np.uint8)
        arr[:] = (10 * i, 50, 200 - 10 * i)
        x0, y0 = 4 * rng.integers(0, w // 8), 4 * rng.integers(0, h // 8)  # box edges on target pixels
        box = (slice(y0, y0 + h // 2), slice(x0, x0 + w // 2))
        arr[box] = 255
        Image.fromarray(arr).save(root / "img" / f"s{i}.png")
        if masks:
            m = np.zeros((h, w), bool)
            m[box] = True
            Image.fromarray(m).save(root / "seg" / f"s{i}_mask.png")
    table = pd.DataFrame({"sid": [f"s{i}" for i in range(n)], "y": ["b", "a", "c"] * (n // 3),
                          "patient": [f"p{i // 2}" for i in range(n)], "age": np.arange(n) + 20.0,
                          "site": ["x", "y"] * (n // 2), **(rows or {})})
    table.to_csv(root / "meta.csv", index=False)
    return table


BASE = {"images": "img", "labels": "meta.csv", "id": "sid", "label": "y", "size": 16}


def test_synthetic_labels_groups_domain_concepts(tmp_path: Path) -> None:
    make_folder(tmp_path)
    ds = load(tmp_path, None, **BASE, group="patient", domain="site", classes="c,b,a")
    assert ds.class_names == ["c", "b", "a"] and ds.labels[:3].tolist() == [1, 2, 0]
    assert ds.group[:3].tolist() == ["p0", "p0", "p1"] and ds.domain[:2].tolist() == ["x", "y"]
    assert list(ds.concepts.columns) == ["age"] and ds.concepts.loc["s3", "age"] == 23.0
    assert ds.cache_path is None and ds.images.shape == (12, 3, 16, 16)
    for name in ds.split_names:
        assert not set(ds.group[ds.split == name]) & set(ds.group[ds.split != name])


def test_other_drop_keeps_only_the_named_classes_with_their_own_images(tmp_path: Path) -> None:
    make_folder(tmp_path)  # labels b, a, c repeating; image s{i} has red channel 10 i
    ds = load(tmp_path, None, **BASE, classes="a,b", other="drop")
    kept = [i for i in range(12) if i % 3 != 2]
    assert ds.class_names == ["a", "b"] and len(ds.labels) == 8
    assert ds.labels.tolist() == [1, 0] * 4
    background = ds.images[:, 0].flatten(1).median(1).values.numpy()  # 3/4 of each image; resampling blurs edges
    np.testing.assert_allclose(background, [10 * i for i in kept], atol=3)  # neighbours differ by 10
    assert ds.concepts.index.tolist() == [f"s{i}" for i in kept]


def test_balance_down_cuts_the_larger_class_by_whole_groups(tmp_path: Path) -> None:
    make_folder(tmp_path, rows={"y": ["a"] * 8 + ["b"] * 4})  # patients p0..p5 hold two images each
    ds = load(tmp_path, None, **BASE, group="patient", balance="down")
    assert sorted(ds.labels.tolist()) == [0] * 4 + [1] * 4
    kept = list(ds.concepts.index)
    assert kept[-4:] == ["s8", "s9", "s10", "s11"]  # class b, the smallest, whole and in CSV order
    assert sorted(set(ds.group[:4])) == sorted({f"p{int(i[1:]) // 2}" for i in kept[:4]})
    assert all((ds.group == g).sum() == 2 for g in set(ds.group))  # no lesion split by the cut
    draws = {tuple(load(tmp_path, None, **BASE, group="patient", balance="down", seed=s).concepts.index)
             for s in range(6)}
    assert len(draws) > 1  # the draw follows seed=


def test_rgb_channel_order_and_grayscale(tmp_path: Path) -> None:
    make_folder(tmp_path)
    rgb = load(tmp_path, None, **BASE)
    pixels = rgb.images[3].reshape(3, -1).T.tolist()
    assert pixels.count([30, 50, 170]) > 64 and pixels.count([255, 255, 255]) > 16
    grey = load(tmp_path, None, **BASE, channels=1)
    assert grey.images.shape == (12, 1, 16, 16)
    luma = Image.new("RGB", (1, 1), (30, 50, 170)).convert("L").getpixel((0, 0))
    assert (grey.images[3] == luma).sum() > 64 and (grey.images[3] == 255).sum() > 16


def test_masks_load_aligned_for_every_fit(tmp_path: Path) -> None:
    make_folder(tmp_path, masks=True)
    for fit in ("stretch", "crop", "pad"):
        ds = load(tmp_path, None, **BASE, masks="seg", mask_pattern="{id}_mask.png", fit=fit)
        assert ds.masks.dtype == torch.uint8 and set(torch.unique(ds.masks).tolist()) <= {0, 1}
        white = (ds.images.min(1).values > 128).to(torch.uint8)
        agree = (white == ds.masks).float().mean(dim=(1, 2))
        assert agree.min() == 1.0, fit
        assert ((white.roll(1, 0) == ds.masks).float().mean(dim=(1, 2)) < 0.9).any(), fit


def test_border_cuts_image_and_mask_alike(tmp_path: Path) -> None:
    """border=N removes N pixels from every side of image and mask before fit (issue 28): a 2-pixel red frame
    is gone from the image and the masks still match the white boxes for every fit (at least 96 % of the
    pixels; the boxes' edges are resampled: bicubic image, nearest mask). A mask left uncut agrees with its
    image on 38-88 % of the pixels in the worst image."""
    make_folder(tmp_path, masks=True)
    for i in range(12):
        path = tmp_path / "img" / f"s{i}.png"
        arr = np.asarray(Image.open(path)).copy()
        arr[:2], arr[-2:], arr[:, :2], arr[:, -2:] = (255, 0, 0), (255, 0, 0), (255, 0, 0), (255, 0, 0)
        Image.fromarray(arr).save(path)
    for fit in ("stretch", "crop", "pad"):
        ds = load(tmp_path, None, **BASE, **MASKS, fit=fit, border=8)
        white = (ds.images.min(1).values > 128).to(torch.uint8)
        assert (white == ds.masks).float().mean(dim=(1, 2)).min() >= 0.95, fit
        red = (ds.images[:, 0] > 200) & (ds.images[:, 1] < 60) & (ds.images[:, 2] < 60)
        assert not red.any(), fit
    framed = load(tmp_path, None, **BASE, **MASKS)  # without border= the frame shows at the edges
    assert ((framed.images[:, 0] > 200) & (framed.images[:, 1] < 60)).any()


def test_user_split_column(tmp_path: Path) -> None:
    make_folder(tmp_path, rows={"part": ["train", "Validation", "test", "test_ood"] * 3})
    ds = load(tmp_path, None, **BASE, split="part")
    assert ds.split[:4].tolist() == ["train", "val", "test", "test_ood"]
    assert ds.split_names == ["train", "val", "test", "test_ood"]


def test_cache_is_reused_then_invalidated_when_a_file_changes(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    make_folder(tmp_path / "d")
    cache = tmp_path / "cache"
    first = load(tmp_path / "d", cache, **BASE)
    assert (Path(first.cache_path) / "images.npy").is_file()
    assert (Path(first.cache_path) / "meta.json").is_file()
    with monkeypatch.context() as m:
        m.setattr(folder_mod, "decode_all", lambda *a: pytest.fail("decoded although the cache is valid"))
        hit = load(tmp_path / "d", cache, **BASE)
    assert hit.cache_path == first.cache_path and torch.equal(hit.images, first.images)
    path = tmp_path / "d" / "img" / "s3.png"
    Image.new("RGB", (64, 32), (0, 255, 0)).save(path)
    os.utime(path, ns=(time.time_ns() + 10**9, time.time_ns() + 10**9))
    changed = load(tmp_path / "d", cache, **BASE)
    assert changed.cache_path != first.cache_path and not Path(first.cache_path).exists()
    assert changed.images[3, :, 0, 0].tolist() == [0, 255, 0]
    assert torch.equal(changed.images[4], first.images[4])
    other_size = load(tmp_path / "d", cache, **{**BASE, "size": 8})
    assert other_size.cache_path != changed.cache_path and Path(changed.cache_path).exists()


def test_file_naming_by_ext_pattern_and_data_dir(tmp_path: Path) -> None:
    make_folder(tmp_path / "d")
    for i in range(12):
        (tmp_path / "d" / "img" / f"s{i}.png").rename(tmp_path / "d" / "img" / f"img_s{i}.png")
    ds = load(tmp_path / "d", None, **BASE, pattern="img_{id}.png")
    assert len(ds.labels) == 12
    spec = DataSpec("folder", "d", {**{k: str(v) for k, v in BASE.items()}, "ext": "png"})
    message = str(pytest.raises(DataError, load_folder, spec, LoadContext(data_dir=tmp_path)).value)
    assert "12 of 12 id(s)" in message and "'{id}.png'" in message


def test_numeric_labels_sort_numerically(tmp_path: Path) -> None:
    make_folder(tmp_path, rows={"num": [10, 2, 1] * 4})
    ds = load(tmp_path, None, **{**BASE, "label": "num"})
    assert ds.class_names == ["1", "2", "10"] and ds.labels[:3].tolist() == [2, 1, 0]


def test_grouped_split_is_seeded_stratified_and_grouped() -> None:
    rng = np.random.default_rng(3)
    groups = rng.integers(0, 800, 3000).astype(str)
    labels = (rng.random(3000) < 0.2).astype(np.int64) + (rng.random(3000) < 0.05)
    a = grouped_split(labels, groups, 3, 0.2, 0.1, seed=5)
    assert (a == grouped_split(labels, groups, 3, 0.2, 0.1, seed=5)).all()
    assert (a != grouped_split(labels, groups, 3, 0.2, 0.1, seed=6)).any()
    overall = np.bincount(labels, minlength=3) / 3000
    for name, fraction in (("train", 0.7), ("val", 0.2), ("test", 0.1)):
        part = labels[a == name]
        assert abs(len(part) / 3000 - fraction) < 0.02
        assert np.abs(np.bincount(part, minlength=3) / len(part) - overall).max() < 0.02
        assert not set(groups[a == name]) & set(groups[a != name])
    assert set(grouped_split(labels, groups, 3, 0.0, 0.2, seed=0)) == {"train", "test"}


# ------------------------------------------------------------------------------------------ errors
def corrupt(root: Path) -> None:
    """Replace one image with bytes that are not an image."""
    (root / "img" / "s5.png").write_bytes(b"not a png at all")


def wrong_mask_size(root: Path) -> None:
    """Make one mask smaller than its image."""
    Image.new("1", (10, 10)).save(root / "seg" / "s2_mask.png")


def drop_mask(root: Path) -> None:
    """Delete one mask."""
    (root / "seg" / "s7_mask.png").unlink()


def drop_images(root: Path) -> None:
    """Delete seven images."""
    for i in range(5, 12):
        (root / "img" / f"s{i}.png").unlink()


def twin(root: Path) -> None:
    """Give one id two image files."""
    Image.new("RGB", (64, 32)).save(root / "img" / "s1.jpg")


MASKS = {"masks": "seg", "mask_pattern": "{id}_mask.png"}
ERRORS = [
    ({"images": "nope"}, None, ["image folder", "nope", "does not exist", "images="]),
    ({"labels": "gone.csv"}, None, ["gone.csv", "not found", "labels="]),
    ({"label": "dx"}, None, ["no column 'dx'", "label=", "available columns: sid, y, patient, age, site"]),
    ({"group": "lesion"}, None, ["no column 'lesion'", "group="]),
    ({}, drop_images, ["7 of 12 id(s)", "no image file", "s5, s6, s7, s8, s9"]),
    ({}, corrupt, ["s5.png", "cannot decode image", "other images may change split; a split= column pins it"]),
    ({"split": "part"}, corrupt, ["s5.png", "drop its row", "the part column keeps every other image in its split"]),
    ({}, twin, ["several image files", "s1", "ext="]),
    ({"masks": "nomasks"}, None, ["mask folder", "nomasks", "masks="]),
    (MASKS, drop_mask, ["1 of 12 id(s)", "no mask file", "s7", "mask_pattern"]),
    (MASKS, wrong_mask_size, ["s2_mask.png", "10x10", "s2.png", "64x32"]),
    ({"colour": "red"}, None, ["unknown option(s) colour", "accepts"]),
    ({"split": "site"}, None, ["column 'site'", "unknown split value(s) x, y", "test_NAME"]),
    ({"split": "site", "val": "0.2"}, None, ["val/test/seed", "split=site"]),
    ({"val": "0.6", "test": "0.5"}, None, ["val + test < 1"]),
    ({"classes": "a,b"}, None, ["value(s) c not in classes=a,b"]),
    ({"other": "drop"}, None, ["other=drop needs classes="]),
    ({"classes": "x,z", "other": "drop"}, None, ["column 'y'", "no row has a label in classes=x,z"]),
    ({"classes": "a,b", "other": "keep"}, None, ["other=keep", "error, drop"]),
    ({"balance": "up"}, None, ["balance=up", "none, down"]),
    ({"pattern": "{name}.png"}, None, ["pattern={name}.png", "{id}"]),
    ({"fit": "zoom"}, None, ["fit=zoom", "stretch, crop, pad"]),
    ({"border": "16"}, None, ["border=16 leaves nothing of a 64x32 image", "below 16"]),
]


@pytest.mark.parametrize(("options", "damage", "expected"), ERRORS,
                         ids=[e[2][0].split()[0] + "-" + ",".join(e[0]) for e in ERRORS])
def test_errors_name_the_file_or_column_and_the_fix(tmp_path: Path, options: dict, damage, expected) -> None:
    make_folder(tmp_path, masks=True, rows={"part": ["train", "val", "test"] * 4})
    if damage is not None:
        damage(tmp_path)
    message = load_error(tmp_path, tmp_path / "cache", **{**BASE, **options})
    for part in expected:
        assert part in message, (part, message)


def test_errors_in_the_csv_and_the_path(tmp_path: Path) -> None:
    make_folder(tmp_path / "d")
    assert "does not exist" in load_error(tmp_path / "missing", **BASE)
    # the folder above the dataset: the message names the one that holds the labels (issue 28)
    assert f"{tmp_path / 'd'} holds it: point folder: at that folder" in load_error(tmp_path, **BASE)
    assert "labels=FILE.csv is required" in load_error(tmp_path / "d", **{"images": "img"})
    meta = tmp_path / "d" / "meta.csv"
    table = pd.read_csv(meta)
    table.loc[4, "y"] = None
    table.to_csv(meta, index=False)
    assert "column 'y': 1 empty cell(s), first at CSV line 6" in load_error(tmp_path / "d", **BASE)
    pd.concat([table.fillna("a"), table.iloc[:2]]).to_csv(meta, index=False)
    assert "2 duplicated id(s), e.g. s0, s1" in load_error(tmp_path / "d", **BASE)


def test_user_split_that_puts_a_group_in_two_splits_names_the_group(tmp_path: Path) -> None:
    # patient p1 = images s2, s3: s2 in train, s3 in test
    make_folder(tmp_path, rows={"part": ["train", "train", "train", "test"] + ["train", "train", "val", "val"] * 2})
    message = load_error(tmp_path, None, **BASE, split="part", group="patient")
    assert "meta.csv column 'part'" in message and "'patient'" in message
    assert "group 'p1' is in splits test, train" in message and "1 group(s)" in message
    fine = load(tmp_path, None, **BASE, split="part")  # without a group column nothing can leak
    assert fine.split[3] == "test"


def test_empty_group_cells_are_singleton_groups(tmp_path: Path) -> None:
    patients = ["p0", "p0", None, None, "p2", "p2", None, None, "p4", "p4", "p5", "p5"]
    make_folder(tmp_path, rows={"patient": patients, "part": ["train", "train", "train", "test"] + ["val"] * 8})
    ds = load(tmp_path, None, **BASE, split="part", group="patient")  # s2 (train) and s3 (test): no group shared
    empty = [i for i, p in enumerate(patients) if p is None]
    assert len(set(ds.group[empty])) == len(empty), "each image with an empty group cell is its own group"
    assert not set(ds.group[empty]) & {p for p in patients if p}
    seeded = load(tmp_path, None, **BASE, group="patient", val=0.3, test=0.3)
    for name in seeded.split_names:
        assert not set(seeded.group[seeded.split == name]) & set(seeded.group[seeded.split != name])
