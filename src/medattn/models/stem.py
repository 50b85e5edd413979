"""Stem policy: how much a CNN downsamples its input before the first stage, chosen from the image size.

ImageNet CNNs (He et al., "Deep Residual Learning", CVPR 2016) open with a stride-4 stem (7x7 stride-2
convolution + max-pool in ResNet, 4x4 patchify in ConvNeXt; EfficientNet's is stride 2). On 28-64 px medical
images that leaves 1-2 px feature maps, so small-image work (e.g. the CIFAR ResNets of the same paper, and the
MedMNIST v2 baselines) uses a stride-1 3x3 stem instead, at 16x the cost of the standard stem. The candidates:

- `s1`: stride-1 3x3 convolution, no max-pool (the CIFAR stem; `small_stem: true` forces it),
- `s2`: stride 2, no max-pool (ResNet keeps its 7x7 stride-2 convolution; ConvNeXt patchifies 2x2;
  EfficientNet's own stem is already this),
- `standard`: the architecture's own stem (`small_stem: false` forces it).

The default per size range (`STEM_POLICY`) follows bench/stem_policy.py (docs/performance.md "Stem policy": ResNet-18,
3 seeds, validation balanced accuracy and cost): below 64 px `s2`, from 64 px the standard stem. On
PneumoniaMNIST-28 the three stems were within one seed spread of each other (s1 0.933, s2 0.943, standard
0.945), so cost decides among the stems every backbone can build at that size: ConvNeXt's standard stem
cannot take a 28 px image through its four stages (7 -> 3 -> 1 px, then a 2x2 downsampling fails), and s2
costs 3.7x fewer FLOPs than s1 while leaving a 2 x 2 last stage for spatial attention and Grad-CAM. On
HAM10000 at 64 px (class-weighted, 5 epochs) the standard stem was the most accurate and the cheapest
(standard 0.489, s1 0.471, s2 0.442; s2 below standard in every seed, by 2.7-5.9 points) and still leaves a
2 x 2 last stage for every backbone. Between 29 and 63 px nothing was measured; s2 keeps that 2 x 2 stage.
"""

from __future__ import annotations

from medattn.errors import ModelError

STEMS = ("s1", "s2", "standard")
SMALL_IMAGE = 64  # the pre-policy rule (s1 at or below this size), kept to rebuild checkpoints saved under it

# (largest image size of the range, stem), in increasing size; images above the last range get the standard stem.
STEM_POLICY: tuple[tuple[int, str], ...] = ((63, "s2"),)


def default_stem(image_size: int) -> str:
    """The stem the measured policy gives a CNN at `image_size` px."""
    for largest, stem in STEM_POLICY:
        if image_size <= largest:
            return stem
    return "standard"


def resolve_stem(image_size: int, small_stem: bool | None = None, stem: str = "auto") -> str:
    """The stem to build: `small_stem` (True: s1, False: standard) or an explicit `stem` override the policy."""
    if stem not in ("auto", *STEMS):
        raise ModelError(f"stem '{stem}' is not valid; use auto or one of {', '.join(STEMS)}")
    if small_stem is not None and stem != "auto":
        raise ModelError(f"small_stem={small_stem} and stem='{stem}' both choose the stem; give only one")
    if small_stem is not None:
        return "s1" if small_stem else "standard"
    return default_stem(image_size) if stem == "auto" else stem
