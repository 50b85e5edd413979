"""The CAM family, batched on tensors: Grad-CAM, Grad-CAM++, LayerCAM and Score-CAM in torch, EigenCAM from
pytorch-grad-cam.

Papers: Selvaraju et al., "Grad-CAM", ICCV 2017; Chattopadhay et al., "Grad-CAM++", WACV 2018; Jiang et al.,
"LayerCAM", IEEE TIP 2021; Wang et al., "Score-CAM", CVPR-W 2020; Muhammad and Yeasin, "Eigen-CAM", IJCNN 2020.
The formulas and the post-processing (ReLU, per-map min-max scaling with +1e-7, bilinear resize to the
input, ReLU and min-max again) are those of pytorch-grad-cam 1.5, which the tests compare against per image.
Departure: pytorch-grad-cam moves every batch to numpy and resizes map by map with OpenCV; here one forward
and one backward pass serve the whole batch and everything stays on the model's device. EigenCAM (one SVD
per image, class-independent) is taken from pytorch-grad-cam unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from medattn.errors import SpecError
from medattn.explain.targets import TargetLayer

EPS = 1e-7  # pytorch-grad-cam's scale_cam_image
CamFn = Callable[[nn.Module, TargetLayer, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class CamMethod:
    """A registered CAM method: `compute(model, layer, x, classes)` returns (B, H, W) maps in [0, 1]."""

    name: str
    title: str
    paper: str
    compute: CamFn
    class_specific: bool = True


def scale_maps(cam: torch.Tensor, size: tuple[int, int], upsample: str = "bilinear") -> torch.Tensor:
    """ReLU, min-max scale each map, resize to `size` (bilinear as pytorch-grad-cam, or nearest: the grid's cells
    as plateaus), then again ReLU and min-max."""
    cam = _minmax(cam.clamp_min(0))
    options = {"align_corners": False} if upsample == "bilinear" else {}
    cam = F.interpolate(cam[:, None], size=size, mode=upsample, **options)[:, 0]
    return _minmax(cam.clamp_min(0))


def _minmax(cam: torch.Tensor) -> torch.Tensor:
    flat = cam.flatten(1)
    low = flat.min(dim=1).values.view(-1, 1, 1)
    cam = cam - low
    high = cam.flatten(1).max(dim=1).values.view(-1, 1, 1)
    return cam / (EPS + high)


def activations_and_gradients(model: nn.Module, layer: TargetLayer, x: torch.Tensor,
                              classes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(activations, d logit[class] / d activations, logits) of the whole batch from one forward+backward pass."""
    store: dict[str, torch.Tensor] = {}

    def keep(_module, _args, out):
        store["out"] = out

    handle = layer.module.register_forward_hook(keep)
    try:
        with torch.enable_grad():
            if not any(p.requires_grad for p in model.parameters()):
                x = x.detach().requires_grad_(True)
            logits = model(x)
            score = logits.gather(1, classes.view(-1, 1).to(logits.device)).sum()
            (grad,) = torch.autograd.grad(score, store["out"])
    finally:
        handle.remove()
    act = store["out"].detach()
    if layer.reshape is not None:
        act, grad = layer.reshape(act), layer.reshape(grad)
    return act.float(), grad.float(), logits.detach()


def grad_cam(model: nn.Module, layer: TargetLayer, x: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """Grad-CAM: activations weighted by the spatial mean of their gradients."""
    act, grad, _ = activations_and_gradients(model, layer, x, classes)
    cam = (grad.mean(dim=(2, 3), keepdim=True) * act).sum(1)
    return scale_maps(cam, x.shape[-2:], layer.upsample)


def grad_cam_pp(model: nn.Module, layer: TargetLayer, x: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """Grad-CAM++: positive gradients weighted by the second/third-order alpha coefficients."""
    act, grad, _ = activations_and_gradients(model, layer, x, classes)
    g2 = grad * grad
    g3 = g2 * grad
    alpha = g2 / (2 * g2 + act.sum(dim=(2, 3), keepdim=True) * g3 + 1e-6)
    alpha = torch.where(grad != 0, alpha, torch.zeros_like(alpha))
    weights = (grad.clamp_min(0) * alpha).sum(dim=(2, 3), keepdim=True)
    return scale_maps((weights * act).sum(1), x.shape[-2:], layer.upsample)


def layer_cam(model: nn.Module, layer: TargetLayer, x: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """LayerCAM: activations weighted element-wise by their positive gradients."""
    act, grad, _ = activations_and_gradients(model, layer, x, classes)
    return scale_maps((grad.clamp_min(0) * act).sum(1), x.shape[-2:], layer.upsample)


def _layer_output(model: nn.Module, layer: TargetLayer, x: torch.Tensor) -> torch.Tensor:
    store: dict[str, torch.Tensor] = {}
    handle = layer.module.register_forward_hook(lambda _m, _a, out: store.__setitem__("out", out))
    try:
        with torch.no_grad():
            model(x)
    finally:
        handle.remove()
    out = store["out"]
    return (layer.reshape(out) if layer.reshape is not None else out).float()


def score_cam(model: nn.Module, layer: TargetLayer, x: torch.Tensor, classes: torch.Tensor,
              chunk: int = 512) -> torch.Tensor:
    """Score-CAM: each channel's upsampled, min-max scaled activation masks the input; softmax of the logits weights."""
    act = _layer_output(model, layer, x)
    b, c = act.shape[:2]
    up = F.interpolate(act, size=x.shape[-2:], mode="bilinear", align_corners=True)  # nn.UpsamplingBilinear2d
    low = up.flatten(2).min(-1).values[..., None, None]
    high = up.flatten(2).max(-1).values[..., None, None]
    up = (up - low) / (high - low + 1e-8)
    masked = (x[:, None] * up[:, :, None]).flatten(0, 1)  # (B*C, channels, H, W)
    target = classes.to(x.device).repeat_interleave(c)
    scores = []
    with torch.no_grad():
        for start in range(0, masked.shape[0], chunk):
            logits = model(masked[start:start + chunk])
            scores.append(logits.gather(1, target[start:start + chunk, None])[:, 0].float())
    weights = torch.cat(scores).view(b, c).softmax(-1)
    return scale_maps((weights[..., None, None] * act).sum(1), x.shape[-2:], layer.upsample)


def eigen_cam(model: nn.Module, layer: TargetLayer, x: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """EigenCAM (pytorch-grad-cam): the first principal component of the activations; class-independent."""
    from pytorch_grad_cam import EigenCAM

    with EigenCAM(model, [layer.module], reshape_transform=layer.reshape) as cam:
        maps = cam(input_tensor=x, targets=None)
    return torch.from_numpy(np.asarray(maps, dtype=np.float32)).to(x.device)


CAM_METHODS: dict[str, CamMethod] = {m.name: m for m in [
    CamMethod("gradcam", "Grad-CAM", "Selvaraju et al., ICCV 2017", grad_cam),
    CamMethod("gradcampp", "Grad-CAM++", "Chattopadhay et al., WACV 2018", grad_cam_pp),
    CamMethod("scorecam", "Score-CAM", "Wang et al., CVPR-W 2020", score_cam),
    CamMethod("layercam", "LayerCAM", "Jiang et al., IEEE TIP 2021", layer_cam),
    CamMethod("eigencam", "EigenCAM", "Muhammad and Yeasin, IJCNN 2020", eigen_cam, class_specific=False),
]}
ATTENTION_METHODS = ("attention", "rollout")
PIXEL_METHOD_NAMES = ("intgrad",)  # explain/attribution.py (Captum), no target layer
METHODS = (*CAM_METHODS, *PIXEL_METHOD_NAMES, *ATTENTION_METHODS)


def check_methods(methods: list[str] | tuple[str, ...], where: str = "--methods") -> list[str]:
    """The methods, validated; SpecError listing the valid names on an unknown one."""
    bad = [m for m in methods if m not in METHODS]
    if bad or not methods:
        raise SpecError(f"{where}: unknown explanation method(s) {', '.join(bad) or '(none given)'}; "
                        f"use some of {', '.join(METHODS)}")
    return list(dict.fromkeys(methods))
