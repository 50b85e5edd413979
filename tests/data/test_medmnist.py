"""MedMNIST npz loader: official files, sizes, download from a local URL, and every bad-input case."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest

from medattn.data import medmnist_npz
from medattn.data.dataset_spec import LoadContext, load_dataset, parse_spec
from medattn.errors import DataError


def error_of(spec: str, ctx: LoadContext | None = None) -> str:
    with pytest.raises(DataError) as info:
        load_dataset(spec, ctx or LoadContext())
    message = str(info.value)
    assert "\n" not in message
    return message


def test_official_pneumoniamnist_splits_and_counts(shared_data):
    data = load_dataset("medmnist:pneumoniamnist", LoadContext(data_dir=shared_data / "medmnist"))
    assert [(s, int((data.split == s).sum())) for s in data.split_names] == [
        ("train", 4708), ("val", 524), ("test", 624)]
    assert data.class_counts("train") == [1214, 3494]
    assert data.class_names == ["normal", "pneumonia"]
    assert tuple(data.images.shape[1:]) == (1, 28, 28) and str(data.images.dtype) == "torch.uint8"
    raw = np.load(shared_data / "medmnist" / "pneumoniamnist.npz")
    assert np.array_equal(data.images[:4708, 0].numpy(), raw["train_images"])
    assert np.array_equal(data.labels[-624:].numpy(), raw["test_labels"][:, 0])


def test_rgb_file_by_explicit_path(shared_data):
    data = load_dataset(f"medmnist:{shared_data}/medmnist/dermamnist_jpeg28.npz")
    assert data.in_chans == 3 and data.num_classes == 7
    assert [int((data.split == s).sum()) for s in ("train", "val", "test")] == [7007, 1003, 2005]
    raw = np.load(shared_data / "medmnist" / "dermamnist_jpeg28.npz")
    assert np.array_equal(data.images[0].permute(1, 2, 0).numpy(), raw["train_images"][0])


def test_size_selects_official_file_name(tmp_path, shared_data):
    shutil.copy(shared_data / "medmnist" / "breastmnist.npz", tmp_path / "breastmnist_64.npz")
    data = load_dataset("medmnist:breastmnist?size=64", LoadContext(data_dir=tmp_path))
    assert data.source.endswith("breastmnist_64.npz")
    assert "breastmnist.npz not found" in error_of("medmnist:breastmnist?size=28", LoadContext(data_dir=tmp_path))


def test_download_from_url_with_md5_check(tmp_path, shared_data, monkeypatch):
    src = shared_data / "medmnist" / "breastmnist.npz"
    info = dict(medmnist_npz.medmnist_info("breastmnist"), url=src.as_uri(),
                MD5=hashlib.md5(src.read_bytes()).hexdigest())
    monkeypatch.setattr(medmnist_npz, "medmnist_info", lambda flag: info)
    ctx = LoadContext(data_dir=tmp_path / "dl")
    assert "allow downloading" in error_of("medmnist:breastmnist", ctx)
    data = load_dataset("medmnist:breastmnist?download=yes", ctx)
    assert (tmp_path / "dl" / "breastmnist.npz").read_bytes() == src.read_bytes()
    assert data.class_counts("train") == [147, 399]
    info["MD5"] = "0" * 32
    (tmp_path / "dl" / "breastmnist.npz").unlink()
    assert "MD5" in error_of("medmnist:breastmnist", LoadContext(data_dir=tmp_path / "dl", allow_download=True))
    assert not (tmp_path / "dl" / "breastmnist.npz").exists()


def test_missing_file_names_path():
    assert "/nope/x.npz: file not found" in error_of("medmnist:/nope/x.npz")


def test_missing_data_dir_says_how_to_set_it():
    assert "--data-dir" in error_of("medmnist:pneumoniamnist")


def test_truncated_npz(tmp_path, shared_data):
    bad = tmp_path / "cut.npz"
    bad.write_bytes((shared_data / "medmnist" / "breastmnist.npz").read_bytes()[:20000])
    assert "truncated or corrupt" in error_of(f"medmnist:{bad}")


def test_wrong_keys(tmp_path):
    bad = tmp_path / "keys.npz"
    np.savez(bad, images=np.zeros((2, 28, 28), np.uint8), labels=np.zeros((2, 1), np.uint8))
    assert "missing key(s) train_images" in error_of(f"medmnist:{bad}")


def test_multilabel_refused():
    assert "multi-label" in error_of("medmnist:chestmnist", LoadContext(data_dir=Path(".")))


def test_labels_out_of_range(tmp_path):
    arrays = {f"{s}_images": np.zeros((3, 28, 28), np.uint8) for s in ("train", "val", "test")}
    arrays |= {f"{s}_labels": np.array([[0], [1], [1]], np.uint8) for s in ("train", "val", "test")}
    arrays["test_labels"] = np.array([[0], [1], [2]], np.uint8)
    bad = tmp_path / "pneumoniamnist_bad.npz"
    np.savez(bad, **arrays)
    assert "labels must lie in 0..1" in error_of(f"medmnist:{bad}")


def test_bad_spec_strings():
    assert "unknown kind" in error_of("imagenet:foo")
    assert "expected KIND:TARGET" in error_of("pneumoniamnist")
    assert "size=30 not allowed" in error_of("medmnist:pneumoniamnist?size=30")
    assert "unknown option(s) colour" in error_of("medmnist:pneumoniamnist?colour=1")
    assert "unknown 2D flag" in error_of("medmnist:foomnist", LoadContext(data_dir=Path(".")))
    assert parse_spec("medmnist:x?size=64").options == {"size": "64"}
