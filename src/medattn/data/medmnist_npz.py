"""MedMNIST v2 npz files (official splits, every 2D flag and size), downloaded only when allowed."""

from __future__ import annotations

import hashlib
import shutil
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import torch

from medattn.data.dataset_spec import DataSpec, LoadContext, check_options, option, register_loader
from medattn.data.imageset import SPLITS, ImageSet
from medattn.errors import DataError

SIZES = (28, 64, 128, 224)


def medmnist_info(flag: str) -> dict | None:
    """The medmnist package's INFO entry for a flag (None for an unknown flag)."""
    from medmnist import INFO

    return INFO.get(flag)


def npz_name(flag: str, size: int) -> str:
    """Official download file name: `<flag>.npz` for 28 px, `<flag>_<size>.npz` otherwise."""
    return f"{flag}.npz" if size == 28 else f"{flag}_{size}.npz"


@register_loader("medmnist")
def load_medmnist(spec: DataSpec, ctx: LoadContext) -> ImageSet:
    """Load a MedMNIST npz named by flag (`medmnist:pneumoniamnist?size=64`) or by path (`medmnist:/x.npz`)."""
    check_options(spec, {"size", "download"})
    size = option(spec, "size", 28, int, SIZES)
    allow_download = ctx.allow_download or option(spec, "download", "no", str, ("yes", "no")) == "yes"
    if spec.target.endswith(".npz"):
        path, flag = Path(spec.target).expanduser(), Path(spec.target).stem
    else:
        flag = spec.target.lower()
        path = _locate(flag, size, ctx, allow_download)
    info = medmnist_info(flag.split("_")[0])
    arrays = _read_npz(path)
    images, labels, split = _stack_splits(arrays, path)
    num_classes = int(labels.max()) + 1
    class_names = list(info["label"].values()) if info else [str(i) for i in range(num_classes)]
    return ImageSet(name=flag, images=images, labels=labels, class_names=class_names, split=split,
                    source=str(path))


def _locate(flag: str, size: int, ctx: LoadContext, allow_download: bool) -> Path:
    info = medmnist_info(flag)
    if info is None or flag.endswith("3d"):
        from medmnist import INFO

        flags = ", ".join(f for f in INFO if not f.endswith("3d"))
        raise DataError(f"medmnist: unknown 2D flag '{flag}'; use one of {flags}, or give a path to an .npz")
    if info["task"].startswith("multi-label"):
        raise DataError(f"medmnist: '{flag}' is multi-label ({info['task']}); medattn handles single-label "
                        f"classification only, choose another flag")
    name = npz_name(flag, size)
    if ctx.data_dir is None:
        raise DataError(f"medmnist: no data directory for {name}; pass --data-dir DIR or set MEDATTN_DATA")
    path = ctx.data_dir / name
    if path.exists():
        return path
    if not allow_download:
        raise DataError(f"medmnist: {path} not found; put {name} there or allow downloading "
                        f"(--download, or ?download=yes in the spec)")
    suffix = "" if size == 28 else f"_{size}"
    download(info[f"url{suffix}"], info[f"MD5{suffix}"], path)
    return path


def download(url: str, md5: str, dest: Path) -> Path:
    """Download `url` to `dest` atomically and verify its MD5; DataError if it cannot be fetched or differs."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_suffix(dest.suffix + ".part")
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(partial, "wb") as out:
            shutil.copyfileobj(response, out, length=1 << 20)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise DataError(f"medmnist: download of {url} failed ({exc}); download it by hand to {dest}") from None
    digest = hashlib.md5(partial.read_bytes()).hexdigest()
    if digest != md5:
        partial.unlink()
        raise DataError(f"medmnist: {url} has MD5 {digest}, expected {md5}; retry the download")
    partial.replace(dest)
    return dest


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    if not path.exists():
        raise DataError(f"{path}: file not found; check the path")
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {key: npz[key] for key in npz.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise DataError(f"{path}: not a readable npz file ({type(exc).__name__}: {exc}); "
                        f"the file is truncated or corrupt, download it again") from None


def _stack_splits(arrays: dict[str, np.ndarray], path: Path) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    needed = [f"{s}_{kind}" for s in SPLITS for kind in ("images", "labels")]
    missing = [k for k in needed if k not in arrays]
    if missing:
        raise DataError(f"{path}: missing key(s) {', '.join(missing)} (has {', '.join(sorted(arrays))}); "
                        f"a MedMNIST npz needs {{train,val,test}}_{{images,labels}}")
    images, labels, split = [], [], []
    for s in SPLITS:
        img, lab = arrays[f"{s}_images"], arrays[f"{s}_labels"]
        if lab.ndim == 2 and lab.shape[1] > 1:
            raise DataError(f"{path}: {s}_labels has {lab.shape[1]} columns (multi-label); "
                            f"medattn handles single-label classification only")
        if img.dtype != np.uint8 or img.ndim not in (3, 4) or len(img) != len(lab):
            raise DataError(f"{path}: {s}_images must be uint8 (N,H,W) or (N,H,W,3) with one label per image, "
                            f"got {img.dtype} {img.shape} and {len(lab)} labels")
        images.append(img[:, None] if img.ndim == 3 else img.transpose(0, 3, 1, 2))
        labels.append(lab.reshape(-1).astype(np.int64))
        split.append(np.full(len(img), s))
    if labels[0].size and min(int(lab.min()) for lab in labels if lab.size) < 0:
        raise DataError(f"{path}: negative labels; labels must be 0..K-1")
    return (torch.from_numpy(np.ascontiguousarray(np.concatenate(images))),
            torch.from_numpy(np.concatenate(labels)), np.concatenate(split))
