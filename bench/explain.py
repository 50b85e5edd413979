"""Benchmark explanations: batched Grad-CAM vs a per-image loop of pytorch-grad-cam, and batched deletion /
insertion AUC vs a plain loop (one forward pass per image and step, as a per-sample implementation does).

Both pairs are measured in the same run, interleaved, best of `--repeats` (load only ever adds time, so the
minimum is the least noisy estimate); the table reports maps (or AUC pairs) per second and the speed-up.
Target on CPU: >= 5x for both. Prints a table and writes JSON.

    python bench/explain.py                          # ResNet-18+CBAM, 48 px (stride-4 stem), 32 images
    python bench/explain.py --images 8 --repeats 1   # quick run on a busy CPU
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import torch
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

from medattn.explain.cam import grad_cam
from medattn.explain.faithfulness import auc, baseline_images, deletion_insertion, pixel_ranks
from medattn.explain.targets import target_layer
from medattn.models import build_model


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backbone", default="resnet18")
    p.add_argument("--attention", default="cbam")
    p.add_argument("--size", type=int, default=48)
    p.add_argument("--small-stem", action="store_true", help="stride-1 stem (default: timm's stride-4 stem)")
    p.add_argument("--images", type=int, default=32)
    p.add_argument("--steps", type=int, default=16)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "explain.json")
    return p.parse_args(argv)


def best_time(fn: Callable[[], object], repeats: int, device: str) -> float:
    """Best wall time of `repeats` calls (after one warm-up call)."""
    fn()
    times = []
    for _ in range(repeats):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return min(times)


def main(argv: list[str] | None = None) -> dict:
    """Run both comparisons; print the table; write JSON."""
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = build_model(args.backbone, args.attention, num_classes=2, image_size=args.size,
                        small_stem=args.small_stem).to(args.device).eval()
    layer = target_layer(model, args.backbone, args.size)
    x = torch.randn(args.images, 3, args.size, args.size, device=args.device)
    classes = torch.randint(0, 2, (args.images,), device=args.device)
    maps = grad_cam(model, layer, x, classes)

    def library_loop():
        for i in range(args.images):
            with GradCAM(model, [layer.module]) as cam:
                cam(input_tensor=x[i:i + 1], targets=[ClassifierOutputTarget(int(classes[i]))])

    base = baseline_images(x)
    ranks = pixel_ranks(maps)
    counts = torch.round(torch.linspace(0, args.size * args.size, args.steps + 1)).long().tolist()

    loop_auc: list[torch.Tensor] = []

    def auc_loop():
        loop_auc.clear()
        with torch.no_grad():
            for i in range(args.images):
                curves = []
                for insert in (False, True):
                    probs = []
                    for k in counts:
                        changed = (ranks[i] < k).view(1, 1, args.size, args.size)
                        image = torch.where(changed, x[i], base[i]) if insert else torch.where(changed, base[i], x[i])
                        probs.append(model(image).softmax(1)[0, classes[i]])
                    curves.append(torch.stack(probs))
                loop_auc.append(auc(torch.stack(curves)))

    pairs = {
        "Grad-CAM maps": (lambda: grad_cam(model, layer, x, classes), library_loop, "pytorch-grad-cam per image"),
        "deletion+insertion AUC": (lambda: deletion_insertion(model, x, maps, classes, args.steps), auc_loop,
                                   "loop over images and steps"),
    }
    batched_auc = deletion_insertion(model, x, maps, classes, args.steps)
    auc_loop()
    same = torch.allclose(torch.stack(loop_auc), torch.stack([batched_auc["deletion_auc"],
                                                             batched_auc["insertion_auc"]], 1), atol=1e-4)
    if not same:
        raise SystemExit("batched and looped deletion/insertion AUC differ: the benchmark compares unequal work")
    rows = []
    for name, (batched, reference, ref_name) in pairs.items():
        t_batched, t_ref = [], []
        for _ in range(args.repeats):  # interleaved
            t_batched.append(best_time(batched, 1, args.device))
            t_ref.append(best_time(reference, 1, args.device))
        b, r = min(t_batched), min(t_ref)
        rows.append({"what": name, "reference": ref_name, "images": args.images, "batched_per_s": args.images / b,
                     "reference_per_s": args.images / r, "speedup": r / b})
    print(f"{args.backbone}+{args.attention}, {args.size} px, {args.images} images, {args.device}, "
          f"threads {torch.get_num_threads()}, best of {args.repeats}")
    print(f"{'what':<24} {'reference':<30} {'batched /s':>11} {'reference /s':>13} {'speed-up':>9}")
    for r in rows:
        print(f"{r['what']:<24} {r['reference']:<30} {r['batched_per_s']:>11.1f} {r['reference_per_s']:>13.1f} "
              f"{r['speedup']:>8.1f}x")
    result = {"config": {k: str(v) for k, v in vars(args).items()}, "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
