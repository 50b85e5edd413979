"""Linear probe on self-supervised (MICLe / SimCLR) vs random-init ResNet-18 features: the planted derm-synth case.

Planted case: derm-synth without shortcut artefacts (`artefacts=none`), so the class shows only in the lesion's
dermoscopic concepts. The training images are put into groups of `--group` images of the same class (as if
each lesion had been photographed several times): MICLe's positives (two images of one group) then carry the
class signal, plain SimCLR's (two views of one image) do not. For each seed: the encoder is pretrained on the
training split with labels unused except through the planted groups; an L2 logistic regression (scikit-learn,
standardised features, C=1) is fitted on the train-split features and scored (balanced accuracy) on the test
split; the same probe runs on the random-init encoder of that seed. `--data` runs the same comparison on any
dataset spec with a group column (e.g. HAM10000's lesion_id), without planting anything.

    PYTHONPATH=src nice -n 5 python bench/pretrain_probe.py [--n 400 --size 32 --epochs 8 --seeds 3]
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
from medattn.data.synthetic import generate_derm_synth
from medattn.pretrain.run import PretrainConfig, encoder, features, pretrain_encoder


def planted(n: int, size: int, group: int, seed: int = 0) -> ImageSet:
    """derm-synth without artefacts, training images grouped `group` at a time within each class."""
    data = generate_derm_synth(n=n, size=size, seed=seed, shortcut_corr=0.5, artefacts=())
    rng = np.random.default_rng(seed)
    groups = np.array([f"img{i}" for i in range(n)], dtype=object)
    train = np.flatnonzero(data.split == "train")
    labels = data.labels.numpy()
    for c in np.unique(labels[train]):
        members = rng.permutation(train[labels[train] == c])
        groups[members] = [f"c{c}-g{k // group}" for k in range(len(members))]
    data.group = groups.astype(str)
    return data


def probe(model: torch.nn.Module, data: ImageSet) -> float:
    """Balanced accuracy on test of a logistic regression fitted on the train-split features."""
    x_tr, x_te = features(model, data, "train"), features(model, data, "test")
    y_tr, y_te = (data.labels[data.indices(s)].numpy() for s in ("train", "test"))
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000)).fit(x_tr, y_tr)
    return float(balanced_accuracy_score(y_te, clf.predict(x_te)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=None, help="a dataset spec with groups instead of the planted case")
    ap.add_argument("--n", type=int, default=400)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--group", type=int, default=4)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--batch", type=int, default=120)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--methods", default="micle,simclr")
    ap.add_argument("--stem", default="standard")
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--temperature", type=float, default=0.1)
    ap.add_argument("--out", default="bench/results/pretrain_probe.json")
    args = ap.parse_args()
    data = load_dataset(args.data) if args.data else planted(args.n, args.size, args.group)
    rows = []
    for seed in range(args.seeds):
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
    print(f"\n{data.source or 'planted derm-synth'}: train {len(data.indices('train'))}, test "
          f"{len(data.indices('test'))} images, {args.epochs} epochs, seeds {args.seeds}")
    print("| arm | " + " | ".join(f"seed {r['seed']}" for r in rows) + " | mean | sd |")
    print("|---" * (len(rows) + 3) + "|")
    for arm in arms:
        v = np.array([r[arm] for r in rows])
        print(f"| {arm} | " + " | ".join(f"{x:.3f}" for x in v) + f" | {v.mean():.3f} | {v.std(ddof=1):.3f} |")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"args": vars(args), "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
