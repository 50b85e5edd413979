"""Feature-usage benchmark: usage tests per second and ABCD feature extraction images per second.

Usage tests: 10,000 samples x 20 features (7 label classes, 7 predicted classes, features with 2-6 levels), our
vectorised conditional G-test (with and without the 200-resample CMI bootstrap) against a reference built from
library calls: per label stratum `pandas.crosstab` + `scipy.stats.chi2_contingency(lambda_="log-likelihood")`.
ABCD: our batched torch extraction on real HAM10000 masks (64 and 128 px): border + diameter against per-image
scikit-image `regionprops` (perimeter_crofton, feret_diameter_max), like for like, and all four features
(asymmetry and colour too, which regionprops does not offer) for the full cost.
Prints a table and writes bench/results/features.json. Times are wall-clock on whatever else runs on the machine:
read the ratios.

    PYTHONPATH=src MEDATTN_SHARED_DATA=../shared/data python bench/features.py
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy.stats import chi2_contingency
from skimage.measure import regionprops

from medattn.analysis.abcd import CHUNK, abcd_features, border_compactness, feret_diameter
from medattn.analysis.citest import usage_test
from medattn.data.dataset_spec import LoadContext, load_dataset

OUT = Path(__file__).parent / "results" / "features.json"
HAM = ("folder:{root}/ham10000?images=images&labels=HAM10000_metadata.csv&id=image_id&label=dx&group=lesion_id"
       "&masks=masks&mask_pattern={{id}}_segmentation.png&size={size}&workers=2")


def _timed(fn, repeat: int = 1) -> float:
    """Best wall-clock seconds of `repeat` calls."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def reference_g_test(pred: np.ndarray, feature: np.ndarray, label: np.ndarray) -> float:
    """Conditional G statistic from per-stratum pandas crosstabs and scipy's G-test (the reference)."""
    total = 0.0
    for z in np.unique(label):
        sel = label == z
        table = pd.crosstab(pred[sel], feature[sel]).to_numpy()
        if min(table.shape) > 1:
            total += chi2_contingency(table, lambda_="log-likelihood", correction=False).statistic
    return total


def bench_usage(n: int = 10_000, features: int = 20) -> list[dict]:
    """Rows: tests per second for ours (no bootstrap / 200 bootstrap) and the reference."""
    rng = np.random.default_rng(0)
    label = rng.integers(0, 7, n)
    pred = np.where(rng.random(n) < 0.6, label, rng.integers(0, 7, n))
    feats = [rng.integers(0, 2 + k % 5, n) for k in range(features)]
    ours = _timed(lambda: [usage_test(pred, f, label, bootstrap=0) for f in feats], 3)
    ours_boot = _timed(lambda: [usage_test(pred, f, label, bootstrap=200) for f in feats], 1)
    ref = _timed(lambda: [reference_g_test(pred, f, label) for f in feats], 3)
    g_ours = usage_test(pred, feats[3], label, bootstrap=0).statistic
    assert np.isclose(g_ours, reference_g_test(pred, feats[3], label)), "G statistics disagree"
    return [{"task": f"usage tests ({n} samples x {features} features)", "method": m, "seconds": s,
             "per_second": features / s, "speedup_vs_reference": ref / s}
            for m, s in (("medattn G-test", ours), ("medattn G-test + 200 bootstrap", ours_boot),
                         ("reference: crosstab + scipy per stratum", ref))]


def bench_abcd(root: str, size: int, n_ref: int = 300) -> list[dict]:
    """Rows: images per second of our batched ABCD extraction on all HAM10000 masks vs per-image regionprops."""
    data = load_dataset(HAM.format(root=root, size=size),
                        LoadContext.from_env(cache_dir=os.environ.get("MEDATTN_CACHE")))
    masks, images = data.masks, data.images
    chunks = (masks > 0).float().split(CHUNK)  # batched as abcd_features batches
    sub = masks[:n_ref].numpy()
    task = f"ABCD features, HAM10000 masks at {size} px"
    timed = [("reference: skimage regionprops per image (border + diameter)", n_ref,
              lambda: [(p.perimeter_crofton, p.feret_diameter_max) for m in sub for p in regionprops(m)[:1]]),
             ("medattn batched (torch), border + diameter", len(masks),
              lambda: [(border_compactness(c), feret_diameter(c)) for c in chunks]),
             ("medattn batched (torch), all four features", len(masks), lambda: abcd_features(masks, images))]
    rows = []
    for method, n, fn in timed:
        seconds = _timed(fn)
        rows.append({"task": task, "method": method, "images": n, "seconds": seconds, "per_second": n / seconds})
    for row in rows:
        row["speedup_vs_reference"] = row["per_second"] / rows[0]["per_second"]
    return rows


def main() -> None:
    """Run both benchmarks, print the table, write JSON."""
    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "1")))
    root = os.environ.get("MEDATTN_SHARED_DATA", str(Path(__file__).resolve().parents[1].parent / "shared" / "data"))
    rows = bench_usage()
    for size in (64, 128):
        rows += bench_abcd(root, size)
    table = pd.DataFrame(rows)
    print(table.to_string(index=False, float_format=lambda v: f"{v:,.3g}"))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"threads": torch.get_num_threads(), "load_avg": os.getloadavg(), "rows": rows},
                              indent=2))


if __name__ == "__main__":
    main()
