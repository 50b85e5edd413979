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


class _DropsMidway:
    """A response that sends `good` bytes, then loses the connection (as a flaky network does)."""

    def __init__(self, good: bytes, seen: list[Path], partial: Path):
        self.good, self.seen, self.partial, self.sent = good, seen, partial, False

    def read(self, n: int = -1) -> bytes:
        if not self.sent:
            self.sent = True
            return self.good
        if self.partial.exists():
            self.seen.append(self.partial)
        raise ConnectionResetError(104, "Connection reset by peer")

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def test_network_errors_are_one_line_and_leave_no_partial_file(tmp_path, monkeypatch):
    import urllib.error

    info = dict(medmnist_npz.medmnist_info("breastmnist"), url="https://example.invalid/breastmnist.npz",
                MD5="0" * 32)
    monkeypatch.setattr(medmnist_npz, "medmnist_info", lambda flag: info)
    folder = tmp_path / "dl"
    partial = folder / "breastmnist.npz.part"
    ctx = LoadContext(data_dir=folder, allow_download=True)

    def unreachable(url, timeout):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(medmnist_npz.urllib.request, "urlopen", unreachable)
    message = error_of("medmnist:breastmnist", ctx)
    assert "download of https://example.invalid/breastmnist.npz failed" in message
    assert "Name or service not known" in message and f"by hand to {folder / 'breastmnist.npz'}" in message

    seen: list[Path] = []
    monkeypatch.setattr(medmnist_npz.urllib.request, "urlopen",
                        lambda url, timeout: _DropsMidway(b"PK\x03\x04" + bytes(1000), seen, partial))
    message = error_of("medmnist:breastmnist", ctx)
    assert seen == [partial], "the bytes received went to the .part file until the connection broke"
    assert "Connection reset by peer" in message
    assert list(folder.iterdir()) == [], "neither the .part file nor a truncated npz is left behind"
