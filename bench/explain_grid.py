"""How coarse a CAM grid can be before localisation scores measure the grid: the lesion mask itself pushed
through a g x g grid (explain.scoring.through_grid) against the uniform-map baseline, on derm-synth masks.

This is the measurement behind `min_grid` = 5 (explain/targets.py): the ceiling a layer's resolution allows for
energy, pointing and top-k IoU, per grid size, image size and upsampling. Masks only, no model.

    PYTHONPATH=src python bench/explain_grid.py [--n 200 --sizes 40,64 --grids 2,3,4,5,6,7,8]
"""

from __future__ import annotations

import argparse

from medattn.data.synthetic import generate_derm_synth
from medattn.explain.localisation import localisation_scores
from medattn.explain.scoring import through_grid


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--sizes", default="40,64")
    ap.add_argument("--grids", default="2,3,4,5,6,7,8")
    args = ap.parse_args()
    print("| size | upsample | grid | energy (mask / uniform) | pointing (mask / uniform) | IoU (mask / uniform) |")
    print("|---|---|---|---|---|---|")
    for size in map(int, args.sizes.split(",")):
        masks = generate_derm_synth(n=args.n, size=size, seed=0).masks.float()
        for upsample in ("bilinear", "nearest"):
            for grid in map(int, args.grids.split(",")):
                s = localisation_scores(through_grid(masks, grid, upsample), masks)
                cells = [f"{s[m].nanmean():.3f} / {s[m + '_baseline'].mean():.3f}"
                         for m in ("energy", "pointing", "iou")]
                print(f"| {size} | {upsample} | {grid} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
