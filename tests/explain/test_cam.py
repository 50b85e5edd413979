"""Batched CAMs equal pytorch-grad-cam's per-image result for the same model and layer (within 1e-5)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn
from pytorch_grad_cam import GradCAM, GradCAMPlusPlus, LayerCAM, ScoreCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

from medattn.errors import SpecError
from medattn.explain.cam import CAM_METHODS, check_methods
from medattn.explain.targets import TargetLayer, target_layer
from medattn.models import build_model

LIBRARY = {"gradcam": GradCAM, "gradcampp": GradCAMPlusPlus, "layercam": LayerCAM, "scorecam": ScoreCAM}


def library_maps(method: str, model: nn.Module, layer: TargetLayer, x: torch.Tensor,
                 classes: torch.Tensor) -> np.ndarray:
    """pytorch-grad-cam, one image at a time."""
    out = []
    for i in range(x.shape[0]):
        with LIBRARY[method](model, [layer.module], reshape_transform=layer.reshape) as cam:
            cam.batch_size = 64  # Score-CAM's channel batch
            out.append(cam(input_tensor=x[i:i + 1], targets=[ClassifierOutputTarget(int(classes[i]))])[0])
    return np.stack(out)


def tiny_cnn() -> tuple[nn.Module, TargetLayer]:
    """A 2-conv network with an 8-channel 8 x 8 target layer (Score-CAM stays cheap)."""
    torch.manual_seed(0)
    features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, stride=2, padding=1),
                             nn.ReLU())
    model = nn.Sequential(features, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 3)).eval()
    return model, TargetLayer("0", features)


@pytest.mark.parametrize("method", sorted(LIBRARY))
def test_torch_cams_match_pytorch_grad_cam_per_image(method):
    model, layer = tiny_cnn()
    x, classes = torch.randn(4, 3, 16, 16), torch.tensor([0, 1, 2, 1])
    ours = CAM_METHODS[method].compute(model, layer, x, classes).numpy()
    assert ours.shape == (4, 16, 16) and ours.min() >= 0 and ours.max() <= 1
    np.testing.assert_allclose(ours, library_maps(method, model, layer, x, classes), atol=1e-5)


@pytest.mark.parametrize(("backbone", "attention", "size"), [("resnet18", "cbam", 64), ("vit_tiny", "none", 32)])
def test_gradcam_on_medattn_models_matches_library(backbone, attention, size):
    torch.manual_seed(0)
    model = build_model(backbone, attention, num_classes=3, image_size=size, small_stem=False).eval()
    layer = target_layer(model, backbone, size)
    x, classes = torch.randn(3, 3, size, size), torch.tensor([2, 0, 1])
    ours = CAM_METHODS["gradcam"].compute(model, layer, x, classes).numpy()
    assert ours.max() > 0.99  # a real (non-constant) map
    np.testing.assert_allclose(ours, library_maps("gradcam", model, layer, x, classes), atol=1e-5)


def test_target_layer_avoids_a_one_by_one_stage():
    model = build_model("resnet18", "none", image_size=32, small_stem=False)
    assert target_layer(model, "resnet18").name == "layer4"
    assert target_layer(model, "resnet18", 32).name == "layer1"  # 8, 4, 2, 1 cells at 32 px with the stride-4 stem
    vit = build_model("vit_tiny", "none", image_size=32)
    assert target_layer(vit, "vit_tiny", 32).name == "blocks.11.norm1"


def test_eigencam_is_class_independent_and_unknown_methods_name_the_valid_ones():
    model, layer = tiny_cnn()
    x = torch.randn(2, 3, 16, 16)
    a = CAM_METHODS["eigencam"].compute(model, layer, x, torch.tensor([0, 0]))
    b = CAM_METHODS["eigencam"].compute(model, layer, x, torch.tensor([1, 2]))
    assert torch.equal(a, b) and a.shape == (2, 16, 16)
    with pytest.raises(SpecError, match="gradcam, gradcampp, scorecam"):
        check_methods(["gradcam", "smoothgrad"])
