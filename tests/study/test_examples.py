"""Every study spec in examples/ loads, validates, expands into a plan, and every model in it builds."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from medattn.data.dataset_spec import parse_spec
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
