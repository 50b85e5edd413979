"""Study specs: valid ones expand into the planned units; bad ones fail before training, naming field and line."""

from __future__ import annotations

from pathlib import Path

import pytest
from study_helpers import spec_dict, write_spec
from typer.testing import CliRunner

from medattn.errors import SpecError
from medattn.study.cli import app
from medattn.study.params import apply_params
from medattn.study.plan import make_plan, validate_plan
from medattn.study.spec import load_spec, parse_spec_text
from medattn.train.config import ModelConfig, TrainConfig

GOOD = """\
name: demo
datasets:
  - spec: medmnist:{npz}
    name: pneu
models:
  grid:
    backbones: [resnet18]
    attentions: [se, cbam]
    small_stem: false
  list:
    - name: r18-eca
      backbone: resnet18
      attention: eca
  baselines: [resnet50]
train:
  epochs: 3
tuning:
  trials: 4
  pruner: hyperband
seeds: [0, 1, 2]
"""


def _error(text: str, tmp_path: Path, validate: bool = False) -> str:
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    with pytest.raises(SpecError) as info:
        plan = make_plan(load_spec(path), tmp_path / "out")
        if validate:
            validate_plan(plan)
    message = str(info.value)
    assert "\n" not in message, "user errors are one line"
    assert message.startswith(str(path)), message
    return message


def test_good_spec_expands_grid_list_and_baselines(tiny_npz: Path, tmp_path: Path) -> None:
    path = tmp_path / "demo.yaml"
    path.write_text(GOOD.format(npz=tiny_npz))
    plan = make_plan(load_spec(path), tmp_path / "out")
    names = [m.name for m in plan.models]
    assert names == ["resnet18", "resnet18+se", "resnet18+cbam", "r18-eca", "resnet50"]
    by_name = {m.name: m for m in plan.models}
    assert by_name["resnet18+se"].reference == "resnet18" and not by_name["resnet18+se"].is_baseline
    assert by_name["resnet50"].is_baseline and by_name["resnet50"].reference is None
    assert by_name["resnet18+cbam"].config.small_stem is False
    assert plan.seeds == [0, 1, 2]
    assert plan.spec.tuning_epochs == 3  # max_epochs defaults to train.epochs
    assert [u.tune_study for u in plan.units][:2] == ["demo/pneu/resnet18/tune", "demo/pneu/resnet18+se/tune"]
    assert plan.storage_url == f"journal:{(tmp_path / 'out' / 'study.journal').absolute()}"
    validate_plan(plan)  # every model builds for 28 px grayscale, 2 classes


def test_placements_multiply_attention_models_not_plain_ones() -> None:
    spec = parse_spec_text("""
datasets: [medmnist:pneumoniamnist]
models:
  grid:
    backbones: [resnet18, resnet50]
    attentions: [se]
    placements: {all: null, late: {stages: [4]}}
""")
    names = [m.name for m in make_plan(spec).models]
    assert names == ["resnet18", "resnet18+se@all", "resnet18+se@late",
                     "resnet50", "resnet50+se@all", "resnet50+se@late"]


def test_apply_params_sets_nested_and_model_fields() -> None:
    model, train = apply_params(ModelConfig(), TrainConfig(), {"lr": 0.01, "augment.strength": 2.0,
                                                                "model.drop_rate": 0.3})
    assert (train.lr, train.augment.strength, model.drop_rate) == (0.01, 2.0, 0.3)


def test_unknown_key_names_line_and_allowed_keys(tmp_path: Path) -> None:
    msg = _error("datasets: [medmnist:pneumoniamnist]\nmodels:\n  grid:\n    backbones: [resnet18]\n"
                 "    atentions: [se]\n", tmp_path)
    assert ":5: models.grid.atentions: unknown key 'atentions'" in msg
    assert "attentions" in msg.split("allowed keys:")[1]


def test_negative_epochs(tmp_path: Path) -> None:
    msg = _error("datasets: [medmnist:pneumoniamnist]\nmodels: {list: [resnet18]}\ntrain:\n  batch_size: 8\n"
                 "  epochs: -2\n", tmp_path)
    assert ":5: train.epochs:" in msg and "greater than or equal to 1" in msg


def test_stem_override_reaches_the_model_config(tiny_npz: Path, tmp_path: Path) -> None:
    path = tmp_path / "stem.yaml"
    path.write_text(f"datasets: [medmnist:{tiny_npz}]\nmodels:\n  grid: {{backbones: [resnet18], attentions: [se], "
                    f"stem: s1}}\n  list:\n    - {{name: r18-std, backbone: resnet18, stem: standard}}\n")
    plan = make_plan(load_spec(path), tmp_path / "out")
    assert {m.name: m.config.stem for m in plan.models} == {"resnet18": "s1", "resnet18+se": "s1",
                                                            "r18-std": "standard"}
    msg = _error("datasets: [medmnist:pneumoniamnist]\nmodels:\n  list:\n"
                 "    - {backbone: resnet18, stem: s2, small_stem: true}\n", tmp_path)
    assert ":4: models.list[0]:" in msg and "small_stem and stem both choose the stem" in msg
    msg = _error("datasets: [medmnist:pneumoniamnist]\nmodels:\n  grid: {backbones: [resnet18], stem: s3}\n", tmp_path)
    assert ":3: models.grid.stem:" in msg and "'standard'" in msg


def test_duplicate_model_names(tmp_path: Path) -> None:
    msg = _error("datasets: [medmnist:pneumoniamnist]\nmodels:\n  grid:\n    backbones: [resnet18]\n"
                 "    attentions: [se]\n  list:\n    - {name: resnet18+se, backbone: resnet18, attention: se}\n",
                 tmp_path)
    assert ":7: models.list[0]: duplicate model name 'resnet18+se'" in msg and ":5" in msg


def test_duplicate_dataset_names(tmp_path: Path) -> None:
    msg = _error("datasets:\n  - medmnist:pneumoniamnist\n  - medmnist:pneumoniamnist?size=64\n"
                 "models: {list: [resnet18]}\n", tmp_path)
    assert ":3: datasets[1]: duplicate dataset name 'pneumoniamnist'" in msg


def test_unknown_attention_mechanism_fails_validation(tiny_npz: Path, tmp_path: Path) -> None:
    msg = _error(f"datasets: [medmnist:{tiny_npz}]\nmodels:\n  grid:\n    backbones: [resnet18]\n"
                 f"    attentions:\n      - se\n      - squeeze-magic\n", tmp_path, validate=True)
    assert ":7: models.grid.attentions[1]:" in msg and "squeeze-magic" in msg


def test_unknown_backbone_fails_validation(tiny_npz: Path, tmp_path: Path) -> None:
    msg = _error(f"datasets: [medmnist:{tiny_npz}]\nmodels:\n  list:\n    - backbone: resnet17\n",
                 tmp_path, validate=True)
    assert ":4: models.list[0]:" in msg and "resnet17" in msg


def test_impossible_placement_fails_validation(tiny_npz: Path, tmp_path: Path) -> None:
    msg = _error(f"datasets: [medmnist:{tiny_npz}]\nmodels:\n  grid:\n    backbones: [resnet18]\n"
                 f"    attentions: [se]\n    placements:\n      swap: {{where: replace_3x3}}\n", tmp_path,
                 validate=True)
    # SE gates a feature map; it cannot replace a 3x3 convolution (only MHSA-style mechanisms can)
    assert ":7: models.grid.placements.swap:" in msg and "resnet18+se" in msg and "replace_3x3" in msg


def test_missing_dataset_file(tmp_path: Path) -> None:
    msg = _error(f"datasets:\n  - spec: medmnist:{tmp_path}/nope.npz\nmodels: {{list: [resnet18]}}\n",
                 tmp_path, validate=True)
    assert ":2: datasets[0].spec:" in msg and "nope.npz" in msg and "not found" in msg


def test_unknown_dataset_kind(tmp_path: Path) -> None:
    msg = _error("datasets: [dicom:/x]\nmodels: {list: [resnet18]}\n", tmp_path)
    assert ":1: datasets[0].spec:" in msg and "unknown kind 'dicom'" in msg


@pytest.mark.parametrize("space, expected", [
    ("{epochs: {low: 1, high: 5, type: int}}", "cannot be tuned"),
    ("{lr: {low: 0.0, high: 0.1}}", "value 0.0 is not valid for lr"),
    ("{lr: {low: 0.1, high: 0.01}}", "swap them"),
    ("{learning_rate: {low: 0.001, high: 0.1}}", "unknown parameter 'learning_rate'"),
    ("{optimizer: {type: categorical, choices: [adamw, adam]}}", "value 'adam' is not valid"),
])
def test_bad_search_space(space: str, expected: str, tmp_path: Path) -> None:
    msg = _error(f"datasets: [medmnist:pneumoniamnist]\nmodels: {{list: [resnet18]}}\ntuning:\n"
                 f"  search_space: {space}\n", tmp_path)
    assert ":4: tuning.search_space" in msg and expected in msg


def test_yaml_duplicate_key_and_syntax_error(tmp_path: Path) -> None:
    assert ":3: seeds: key 'seeds' given twice (first on line 2)" in _error(
        "datasets: [medmnist:pneumoniamnist]\nseeds: 3\nseeds: 4\nmodels: {list: [resnet18]}\n", tmp_path)
    assert ":2: invalid YAML" in _error("datasets: [a\nmodels: {}\n", tmp_path)


def test_cli_rejects_bad_spec_before_any_training(tiny_npz: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    spec = spec_dict(f"medmnist:{tiny_npz}", out)
    spec["models"]["grid"]["attentions"] = ["se", "cbam", "sparkle"]
    path = write_spec(tmp_path / "bad.yaml", spec)
    result = CliRunner().invoke(app, ["run", str(path), "--workers", "1"])
    assert result.exit_code == 2, result.output
    assert "models.grid.attentions[2]" in result.output and "sparkle" in result.output
    assert not out.exists(), "nothing (not even the storage) may be created for a bad spec"
