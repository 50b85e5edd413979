"""Every study spec in examples/ loads, validates, expands into a plan, and every model in it builds."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from medattn.data.dataset_spec import parse_spec
from medattn.models.build import build_model
from medattn.study.plan import check_model, make_plan
from medattn.study.spec import load_spec

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.yaml"))
DEFAULT_SIZE = {"medmnist": 28, "folder": 64, "synthetic": 64}


def test_there_are_examples() -> None:
    assert {p.name for p in EXAMPLES} >= {"quickstart.yaml", "pneumoniamnist.yaml", "ham10000.yaml"}


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_spec_is_valid_and_every_model_builds(path: Path, tmp_path: Path) -> None:
    spec = load_spec(path)
    plan = make_plan(spec, out_dir=tmp_path)
    assert plan.units and len(plan.units) == len(plan.datasets) * len(plan.models)
    for dataset in plan.datasets:
        data = parse_spec(dataset.spec)
        size = int(data.options.get("size", DEFAULT_SIZE.get(data.kind, 64)))
        shape = SimpleNamespace(num_classes=3, in_chans=3, image_size=size)  # the data itself is not loaded
        with torch.device("meta"):  # shapes only: nothing is allocated or computed
            for model in plan.models:
                check_model(spec, model, shape)


def test_medmnist_v2_spec_states_table3_protocol(tmp_path: Path) -> None:
    """MedMNIST v2 Table 3, ResNet-18 (28): s1 stem, Adam 1e-3, batch 128, 100 epochs, x0.1 at 50/75, no aug."""
    spec = load_spec(next(p for p in EXAMPLES if p.name == "medmnist-v2-resnet18.yaml"))
    plan = make_plan(spec, out_dir=tmp_path)
    (model,) = plan.models
    train = plan.train_config(model)
    assert (model.config.backbone, model.config.stem, model.config.init) == ("resnet18", "s1", "scratch")
    assert (train.epochs, train.batch_size, train.lr, train.weight_decay, train.warmup_epochs) == (100, 128, 1e-3, 0, 0)
    assert train.lr_milestones == [50, 75] and not train.augment.enabled and train.select_on == "auc"
    assert spec.tuning.trials == 0 and spec.seed_list == [0, 1, 2]
    assert [d.name for d in plan.datasets] == ["pneumoniamnist", "breastmnist", "dermamnist-jpeg"]


def test_piater_spec_pairs_each_self_attention_with_its_plain_backbone(tmp_path: Path) -> None:
    plan = make_plan(load_spec(next(p for p in EXAMPLES if p.name == "piater2024-ham10000.yaml")), out_dir=tmp_path)
    pairs = {m.name: m.reference for m in plan.models}
    assert pairs == {"resnet18": None, "resnet18+global": "resnet18", "resnet18+local": "resnet18",
                     "efficientnet_b0": None, "efficientnet_b0+global": "efficientnet_b0",
                     "efficientnet_b0+local": "efficientnet_b0"}
    assert plan.spec.selection_metric == "balanced_accuracy" and "group=lesion_id" in plan.datasets[0].spec


def test_piater_2core_spec_keeps_the_question_and_a_self_attention_sized_last_stage(tmp_path: Path) -> None:
    """The cut spec still pairs global and local self-attention with plain ResNet-18 on lesion-grouped data, at a
    stem that leaves self-attention a 4 x 4 last stage at 64 px (64 / 16), not 2 x 2."""
    plan = make_plan(load_spec(next(p for p in EXAMPLES if p.name == "piater2024-ham10000-2core.yaml")),
                     out_dir=tmp_path)
    assert {m.name: m.reference for m in plan.models} == {"resnet18": None, "resnet18+global": "resnet18",
                                                         "resnet18+local": "resnet18"}
    assert {m.config.attention for m in plan.models} == {"none", "mhsa", "local"}
    data = parse_spec(plan.datasets[0].spec)
    assert data.options["size"] == "64" and data.options["group"] == "lesion_id"
    with torch.device("meta"):  # shapes only
        for model in plan.models:
            cfg = model.config
            net = build_model(cfg.backbone, cfg.attention, num_classes=7, image_size=64, stem=cfg.stem)
            assert net.forward_features(torch.empty(1, 3, 64, 64)).shape[-2:] == (4, 4), model.name
    assert plan.spec.selection_metric == "balanced_accuracy"
