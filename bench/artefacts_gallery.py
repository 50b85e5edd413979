"""Gallery: real HAM10000 images that carry each artefact type beside clean HAM10000 images with that type inserted.

    python bench/artefacts_gallery.py [--data ../shared/data] [--size 128] [--out artefacts_gallery.png]

One row per artefact type (ruler, bubble, ink, ink_circle): on the left `--real` images the templates were cut
from (their meta.json sources, so they carry that artefact), on the right the same number of clean images
(lesions that are not template sources, drawn with a seed) with the artefact inserted by
`medattn.data.artefacts.insert_artefacts`, all resized to `--size` the way the folder loader does (stretched to
a square). Writes the PNG (each image upscaled `--zoom` times, nearest) and prints the pixel share each type's
mask covers. Needs the HAM10000 folder and the artefact templates (`../shared/data/ham10000`, `.../artefacts`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from medattn.data.artefacts import TYPES, insert_artefacts, load_templates

_SOURCE_KIND = {"ruler": ("ruler",), "bubble": ("bubble",), "ink": ("marking", "spot"),
                "ink_circle": ("marking", "circle")}


def load_images(ham: Path, ids: list[str], size: int) -> tuple[np.ndarray, np.ndarray]:
    """uint8 (N, 3, S, S) images and (N, S, S) masks of HAM10000 ids, stretched to size x size."""
    imgs, masks = [], []
    for i in ids:
        with Image.open(ham / "images" / f"{i}.jpg") as im:
            imgs.append(np.asarray(im.convert("RGB").resize((size, size), Image.BILINEAR)).transpose(2, 0, 1))
        with Image.open(ham / "masks" / f"{i}_segmentation.png") as m:
            masks.append((np.asarray(m.convert("L").resize((size, size), Image.NEAREST)) > 127).astype(np.uint8))
    return np.stack(imgs), np.stack(masks)


def sources(meta: Path, kind: str) -> list[str]:
    """HAM10000 ids the templates of one insertion type were cut from."""
    entries = json.loads(meta.read_text())["artefacts"]
    want = _SOURCE_KIND[kind]
    return [e["name"] for e in entries if (e["class"], e.get("subclass"))[:len(want)] == want]


def main(argv: list[str] | None = None) -> int:
    """Write the gallery PNG; return the exit status."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--real", type=int, default=4, help="real images per row (inserted ones: as many)")
    ap.add_argument("--zoom", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("artefacts_gallery.png"))
    args = ap.parse_args(argv)
    ham, art = args.data / "ham10000", args.data / "artefacts"
    if not (ham / "images").is_dir() or not (art / "meta.json").is_file():
        print(f"needs {ham}/images and {art}/meta.json (the shared data folder)", file=sys.stderr)
        return 2
    bank = load_templates(art)
    rng = np.random.default_rng(args.seed)
    meta = json.loads((art / "meta.json").read_text())["artefacts"]
    all_sources = {e["name"] for e in meta}
    ids = sorted(p.stem for p in (ham / "images").glob("ISIC_*.jpg"))
    clean_pool = [i for i in ids if i not in all_sources]
    k, s, z = args.real, args.size, args.zoom
    label_w = 90
    sheet = Image.new("RGB", (label_w + 2 * k * s * z + 12, len(TYPES) * (s * z + 6) + 24), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    draw.text((label_w, 4), "real (template sources)", fill=(0, 0, 0))
    draw.text((label_w + k * s * z + 12, 4), "clean + inserted", fill=(0, 0, 0))
    for row, kind in enumerate(TYPES):
        real_ids = list(rng.choice(sources(art / "meta.json", kind), k, replace=False))
        clean_ids = list(rng.choice(clean_pool, k, replace=False))
        real, _ = load_images(ham, real_ids, s)
        clean, masks = load_images(ham, clean_ids, s)
        out, art_masks = insert_artefacts(clean, {kind: np.ones(k, bool)}, bank, lesion_masks=masks,
                                          seed=args.seed + row)
        print(f"{kind:10s} mask covers {100 * art_masks[kind].mean():5.1f} % of pixels; real {real_ids}; "
              f"clean {clean_ids}")
        y = 20 + row * (s * z + 6)
        draw.text((4, y + s * z // 2), kind, fill=(0, 0, 0))
        for j, img in enumerate([*real, *out]):
            tile = Image.fromarray(img.transpose(1, 2, 0)).resize((s * z, s * z), Image.NEAREST)
            sheet.paste(tile, (label_w + j * s * z + (12 if j >= k else 0), y))
    sheet.save(args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
