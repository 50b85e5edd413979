"""Linear probe on self-supervised (MICLe / SimCLR) vs random-init ResNet-18 features: the planted derm-synth case.

Planted case: `synthetic:derm-synth?artefacts=none&shortcut_corr=0.5&views=K`, every lesion photographed K
times (the same outline, colours, dots, streaks and network, so the same concepts and class, under a fresh
rotation, skin tone, shading, hair, vignetting, grain and colour cast; group = lesion). The class shows only in
the lesion's dermoscopic concepts. MICLe's positives (two photographs of one lesion) can be matched only by the
lesion, which carries the class; SimCLR's (two augmented views of one photograph) can also be matched by the
skin, hair and cast that the augmentation leaves. For each seed: the encoder is pretrained on the training
split (labels unused); an L2 logistic regression (scikit-learn, standardised features, C=1) is fitted on the
train-split features and scored (balanced accuracy) on every other split (held-out lesions; without artefacts
val, test and test_ood are one distribution); the same probe runs on the random-init encoder of that seed.
`--data` runs the same comparison on any dataset spec with a group column (e.g. HAM10000's lesion_id).

    PYTHONPATH=src OMP_NUM_THREADS=1 nice -n 5 python bench/pretrain_probe.py [--n 2000 --size 64 --views 4]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from medattn.data.dataset_spec import load_dataset
from medattn.data.imageset import ImageSet
from medattn.pretrain.run import PretrainConfig, encoder, features, pretrain_encoder


def planted(n: int, size: int, views: int, seed: int = 0) -> ImageSet:
    """derm-synth without artefacts, `views` photographs of each lesion (group = lesion)."""
    return load_dataset(f"synthetic:derm-synth?n={n}&size={size}&seed={seed}&shortcut_corr=0.5&artefacts=none"
                        f"&views={views}")


def probe(model: torch.nn.Module, data: ImageSet) -> float:
    """Balanced accuracy on all non-train splits of a logistic regression fitted on the train-split features."""
    held_out = [s for s in dict.fromkeys(data.split) if s != "train"]
    x_tr, x_te = features(model, data, "train"), np.concatenate([features(model, data, s) for s in held_out])
    y_tr = data.labels[data.indices("train")].numpy()
    y_te = np.concatenate([data.labels[data.indices(s)].numpy() for s in held_out])
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000)).fit(x_tr, y_tr)
    return float(balanced_accuracy_score(y_te, clf.predict(x_te)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=None, help="a dataset spec with groups instead of the planted case")
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--views", type=int, default=4)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--batch", type=int, default=120)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--first-seed", type=int, default=0, help="seeds first-seed .. first-seed + seeds - 1")
    ap.add_argument("--methods", default="micle,simclr")
    ap.add_argument("--stem", default="standard")
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--temperature", type=float, default=0.1)
    ap.add_argument("--out", default="bench/results/pretrain_probe.json")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: the measured runs shared the CPU)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    data = load_dataset(args.data) if args.data else planted(args.n, args.size, args.views)
    rows = []
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        torch.manual_seed(seed)
        cfg = PretrainConfig(backbone="resnet18", stem=args.stem, epochs=args.epochs, batch_size=args.batch,
                             precision=args.precision, lr=args.lr, temperature=args.temperature)
        row = {"seed": seed, "random": probe(encoder(cfg, data), data)}
        for method in args.methods.split(","):
            start = time.perf_counter()
            model, record = pretrain_encoder(data, cfg.model_copy(update={"method": method}), seed)
            row[method] = probe(model, data)
            row[f"{method}_seconds"] = time.perf_counter() - start
            row[f"{method}_loss"] = [h["loss"] for h in record["history"]]
        rows.append(row)
        print(json.dumps(row), flush=True)
    arms = ["random", *args.methods.split(",")]
    print(f"\n{data.source}: train {len(data.indices('train'))}, held out "
          f"{len(data.labels) - len(data.indices('train'))} images, {args.epochs} epochs, seeds {args.seeds}")
    print("| arm | " + " | ".join(f"seed {r['seed']}" for r in rows) + " | mean | sd |")
    print("|---" * (len(rows) + 3) + "|")
    for arm in arms:
        v = np.array([r[arm] for r in rows])
        print(f"| {arm} | " + " | ".join(f"{x:.3f}" for x in v) + f" | {v.mean():.3f} | {v.std(ddof=1):.3f} |")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"args": vars(args), "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
