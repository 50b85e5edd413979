"""Per-model `train:` overrides in study specs (list entries and the grid): they reach the plan and the runs, and
bad ones fail before training with FILE:LINE: FIELD errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from study_helpers import FakeTrain, spec_dict, write_spec

from medattn.errors import SpecError
from medattn.study.plan import make_plan
from medattn.study.spec import load_spec
from medattn.study.worker import run_worker

OVERRIDES = """\
datasets: [medmnist:pneumoniamnist]
models:
  grid: {backbones: [resnet18], attentions: [se], train: {precision: bf16}}
  list:
    - {name: r18-fp32, backbone: resnet18, train: {precision: fp32, augment: {strength: 0.5}}}
    - {name: r18+se-fp32, backbone: resnet18, attention: se, train: {precision: fp32, augment: {strength: 0.5}}}
train: {epochs: 2, lr: 0.01, augment: {hflip: false}}
tuning: {search_space: {weight_decay: {low: 1.0e-5, high: 0.1, log: true}}}
"""


def test_per_model_train_overrides_reach_the_plan(tmp_path: Path) -> None:
    path = tmp_path / "ablation.yaml"
    path.write_text(OVERRIDES)
    plan = make_plan(load_spec(path), tmp_path / "out")
    train = {m.name: plan.train_config(m) for m in plan.models}
    assert {n: t.precision for n, t in train.items()} == {"resnet18": "bf16", "resnet18+se": "bf16",
                                                          "r18-fp32": "fp32", "r18+se-fp32": "fp32"}
    fp32 = train["r18-fp32"]
    assert (fp32.augment.strength, fp32.augment.hflip) == (0.5, False)  # the augment block merged, not replaced
    assert (fp32.lr, fp32.epochs) == (0.01, 2)  # the rest is the study's
    assert {m.name: m.reference for m in plan.models if m.config.attention != "none"} == {
        "resnet18+se": "resnet18", "r18+se-fp32": "r18-fp32"}  # compared within the same training setup
    assert plan.fingerprints[plan.unit("pneumoniamnist", "resnet18").tune_study] != \
        plan.fingerprints[plan.unit("pneumoniamnist", "r18-fp32").tune_study]


@pytest.mark.parametrize(("block", "expected"), [
    ("{precison: bf16}", ":5: models.list[0].train.precison: unknown key 'precison'"),
    ("{precision: fp8}", ":5: models.list[0].train.precision:"),
    ("{epochs: 3}", ":5: models.list[0].train.epochs: 'epochs' is the same for every model of a study"),
    ("{augment: {strength: 2.0}}", ":5: models.list[0].train.augment.strength: 'augment.strength' is tuned"),
])
def test_bad_train_override_names_its_line(block: str, expected: str, tmp_path: Path) -> None:
    msg = _error(f"datasets: [medmnist:pneumoniamnist]\nmodels:\n  list:\n    - backbone: resnet18\n"
                 f"      train: {block}\n", tmp_path)
    assert expected in msg, msg


def _error(text: str, tmp_path: Path) -> str:
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    with pytest.raises(SpecError) as info:
        make_plan(load_spec(path), tmp_path / "out")
    message = str(info.value)
    assert "\n" not in message and message.startswith(str(path)), message
    return message


def test_runs_train_with_their_models_overrides(tmp_path: Path, tiny_npz: Path) -> None:
    models = {"list": [{"backbone": "resnet18"},
                       {"name": "r18-bf16", "backbone": "resnet18", "train": {"precision": "bf16",
                                                                             "label_smoothing": 0.1}}]}
    spec = spec_dict(f"medmnist:{tiny_npz}", tmp_path / "out", models=models, seeds=1)
    spec["tuning"]["trials"] = 1
    fake = RecordingTrain()
    assert run_worker(make_plan(load_spec(write_spec(tmp_path / "s.yaml", spec))), train_fn=fake,
                      log=lambda msg: None).exit_code == 0
    # one tuning trial and one seeded run per model; the override holds in both stages, the tuned lr is applied
    assert sorted(fake.seen) == [("auto", 0.0, False), ("auto", 0.0, True), ("bf16", 0.1, False), ("bf16", 0.1, True)]
    assert all(1e-3 <= lr <= 1e-2 for lr in fake.lrs)


class RecordingTrain(FakeTrain):
    """FakeTrain that also records each run's precision, label smoothing and stage (final: an output folder)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[str, float, bool]] = []
        self.lrs: list[float] = []

    def __call__(self, data, model, train, seed, out_dir, on_epoch=None):
        self.seen.append((train.precision, train.label_smoothing, out_dir is not None))
        self.lrs.append(train.lr)
        return super().__call__(data, model, train, seed, out_dir, on_epoch)
