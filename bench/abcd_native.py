"""ABCD features at the masks' stored resolution vs at the loader's 64 px: agreement and cost, on HAM10000.

`medattn features` computes the ABCD features of `medattn.analysis.abcd` on the masks the loader hands out:
resized (nearest, stretched to a square, as `data/folder.py` does) to the model's input size. Here, for a
seeded sample of HAM10000 masks at their stored size (200 x 150 in ../shared/data), the same functions run
once on the stored masks and images and once on the 64 px versions made the loader's way (`folder._fit`:
nearest for masks, JPEG draft + bicubic for images). Printed per feature: Spearman correlation, share of
images in the same quartile, time per image at each size; and the count of masks touching the image edge
(`abcd.touches_edge`).

    PYTHONPATH=src MEDATTN_SHARED_DATA=../shared/data nice -n 5 python bench/abcd_native.py [--n 500]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image
from scipy.stats import spearmanr

from medattn.analysis.abcd import ABCD_FEATURES, abcd_features, touches_edge
from medattn.data.folder import _fit

OUT = Path(__file__).parent / "results" / "abcd_native.json"


def _load(root: Path, ids: list[str], size: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Masks (N, H, W) 0/1 and images (N, 3, H, W) uint8, native (size None) or the loader's size x size."""
    masks, images = [], []
    for i in ids:
        with Image.open(root / "masks" / f"{i}_segmentation.png") as im:
            binary = Image.fromarray((np.asarray(im.convert("L")) > 0).astype(np.uint8))
        with Image.open(root / "images" / f"{i}.jpg") as im:
            if size is not None:
                im.draft("RGB", (2 * size, 2 * size))
            rgb = im.convert("RGB")
        if size is not None:
            binary, rgb = _fit(binary, size, "stretch", Image.Resampling.NEAREST), _fit(rgb, size, "stretch",
                                                                                         Image.Resampling.BICUBIC)
        masks.append(np.asarray(binary))
        images.append(np.asarray(rgb).transpose(2, 0, 1))
    return np.stack(masks), np.stack(images)


def _timed_features(masks: np.ndarray, images: np.ndarray, chunk: int) -> tuple[pd.DataFrame, float]:
    """ABCD table and seconds per image (one thread)."""
    start = time.perf_counter()
    table = abcd_features(torch.from_numpy(masks), torch.from_numpy(images), chunk=chunk)
    return table, (time.perf_counter() - start) / len(masks)


def main() -> None:
    """Sample, compute at both sizes, compare, print and write the JSON."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    root = Path(os.environ.get("MEDATTN_SHARED_DATA", "../shared/data")) / "ham10000"
    meta = pd.read_csv(root / "HAM10000_metadata.csv")
    ids = meta["image_id"].sample(args.n, random_state=args.seed).tolist()
    native_masks, native_images = _load(root, ids, None)
    small_masks, small_images = _load(root, ids, 64)
    native, native_s = _timed_features(native_masks, native_images, chunk=16)
    small, small_s = _timed_features(small_masks, small_images, chunk=256)
    edge = touches_edge(native_masks)
    rows = []
    for f in ABCD_FEATURES:
        ok = native[f].notna() & small[f].notna()
        a, b = native.loc[ok, f], small.loc[ok, f]
        same = (pd.qcut(a.rank(method="first"), 4, labels=False) == pd.qcut(b.rank(method="first"), 4,
                                                                            labels=False)).mean()
        inner = ok & ~edge
        rows.append({"feature": f, "images": int(ok.sum()), "spearman": float(spearmanr(a, b).statistic),
                     "same_quartile": float(same),
                     "spearman_not_edge": float(spearmanr(native.loc[inner, f], small.loc[inner, f]).statistic)})
    print(f"HAM10000, {args.n} masks (seed {args.seed}), native {native_masks.shape[2]}x{native_masks.shape[1]} "
          f"vs 64 px stretched; {int(edge.sum())} masks touch the image edge")
    print("| feature | images | Spearman native vs 64 px | same quartile | Spearman, masks off the edge |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['feature']} | {r['images']} | {r['spearman']:.3f} | {r['same_quartile']:.2f} | "
              f"{r['spearman_not_edge']:.3f} |")
    print(f"time per image, all four features, one thread: native {1000 * native_s:.1f} ms, 64 px "
          f"{1000 * small_s:.2f} ms (ratio {native_s / small_s:.0f}x)")
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps({"n": args.n, "seed": args.seed, "edge_touching": int(edge.sum()), "rows": rows,
                               "native_s_per_image": native_s, "small_s_per_image": small_s}, indent=1))


if __name__ == "__main__":
    main()
