"""Data randomisation (Adebayo et al. 2018, section 4): maps against those of a copy fine-tuned on permuted labels.

Expected values from planted facts: the trained ResNet-18 of test_cascade.py fits a planted task (a bright disc
makes class 1); fine-tuned on permuted labels it loses that task, and its Grad-CAM maps change (not flagged),
while a map that ignores the model (the input's magnitude) has rho = 1 on every image and is flagged.
"""

from __future__ import annotations

import pytest
import torch
from test_cascade import planted, target_layer_of, trained_resnet  # noqa: F401 (module fixture)

from medattn.explain.cam import grad_cam
from medattn.explain.randomisation import flag_interval, permuted_label_model, spearman
from medattn.explain.targets import target_layer

STEPS, LR = 8, 3e-3


def fine_tuned(model, seed: int = 0, steps: int = STEPS):
    x, y = planted(24)
    return permuted_label_model(model, lambda idx: x[idx], y, steps=steps, lr=LR, seed=seed, batch_size=24)


@pytest.fixture(scope="module")
def twin(trained_resnet):  # noqa: F811
    """The trained ResNet-18 fine-tuned on permuted labels, and the original's weights before the fine-tune."""
    model = trained_resnet[0]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    return fine_tuned(model), before


def test_permuted_label_fine_tune_flags_an_input_map_and_not_gradcam(trained_resnet, twin):  # noqa: F811
    model, x, y = trained_resnet
    twin = twin[0]
    layer = target_layer(model, "resnet18", 32).name
    rho = spearman(grad_cam(model, target_layer_of(model, layer), x, y),
                   grad_cam(twin, target_layer_of(twin, layer), x, y))
    mean, low, flagged = flag_interval(rho)
    print(f"gradcam rho mean {mean:.3f} low {low:.3f}")
    assert not flagged and mean < 0.5
    fixed = spearman(x.abs().sum(1), x.abs().sum(1))  # the input's magnitude: the same map for any model
    assert torch.allclose(fixed, torch.ones_like(fixed)) and flag_interval(fixed)[2]


def test_fine_tune_erases_the_planted_task_leaves_the_model_and_is_seeded(trained_resnet, twin):  # noqa: F811
    model, x, y = trained_resnet
    twin, before = twin
    with torch.no_grad():
        accuracy = (twin(x).argmax(1) == y).float().mean().item()
    print(f"accuracy after {accuracy:.3f}")
    assert accuracy <= 0.75  # the trained model has 1.0 (fixture)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    short, again, other = (fine_tuned(model, seed, steps=1) for seed in (0, 0, 1))
    same = [torch.equal(a, b) for a, b in zip(short.state_dict().values(), again.state_dict().values(), strict=True)]
    differ = [torch.equal(a, b) for a, b in zip(short.state_dict().values(), other.state_dict().values(), strict=True)]
    assert all(same) and not all(differ)
