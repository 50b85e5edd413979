"""`init` as a study factor: grid inits expand the models, each variant is paired with the plain model of its init."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import timm
from safetensors.torch import save_file

from medattn.errors import SpecError
from medattn.study.plan import check_model, make_plan
from medattn.study.spec import parse_spec_text

SPEC = """
name: init-factor
datasets: ["synthetic:derm-synth?n=60&size=32"]
models:
  grid:
    backbones: [resnet18]
    attentions: [se]
    stem: s2
    inits: [scratch, "{init}"]
"""


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    folder = tmp_path_factory.mktemp("w")
    save_file(timm.create_model("resnet18", num_classes=1000).state_dict(), str(folder / "r18_in1k.safetensors"))
    save_file(timm.create_model("resnet34", num_classes=1000).state_dict(), str(folder / "r34.safetensors"))
    return folder


def test_grid_inits_name_and_pair_models_within_each_init(weights, tmp_path):
    spec = parse_spec_text(SPEC.format(init=f"file:{weights / 'r18_in1k.safetensors'}"))
    plan = make_plan(spec, out_dir=tmp_path)
    assert {m.name: (m.reference, m.config.init.split(":")[0]) for m in plan.models} == {
        "resnet18.scratch": (None, "scratch"), "resnet18+se.scratch": ("resnet18.scratch", "scratch"),
        "resnet18.r18_in1k": (None, "file"), "resnet18+se.r18_in1k": ("resnet18.r18_in1k", "file")}
    assert len({plan.fingerprints[u.tune_study] for u in plan.units}) == 4  # the init is part of what a run is
    shape = SimpleNamespace(num_classes=2, in_chans=3, image_size=32)
    for model in plan.models:
        check_model(spec, model, shape)  # loads the checkpoint: it fits


def test_a_mismatched_checkpoint_is_refused_at_its_spec_line(weights, tmp_path):
    spec = parse_spec_text(SPEC.format(init=f"file:{weights / 'r34.safetensors'}"), source="s.yaml")
    plan = make_plan(spec, out_dir=tmp_path)
    shape = SimpleNamespace(num_classes=2, in_chans=3, image_size=32)
    expected = (r"^s\.yaml:9: models\.grid\.inits\[1\]: model 'resnet18\.r34': init "
                r".*r34\.safetensors.*block 'layer1\.2'")
    with pytest.raises(SpecError, match=expected):
        for model in plan.models:
            check_model(spec, model, shape)
    with pytest.raises(SpecError, match=r"s\.yaml:9: models\.grid\.inits.*not understood"):
        parse_spec_text(SPEC.format(init="imagenet"), source="s.yaml")
