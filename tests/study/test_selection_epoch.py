"""A study trains every run to keep its best epoch on the spec's selection_metric (issue 21)."""

from __future__ import annotations

import json

from study_helpers import spec_dict, write_spec

from medattn.study.plan import make_plan
from medattn.study.spec import load_spec


def test_a_study_selects_epochs_on_its_selection_metric(tmp_path):
    spec = load_spec(write_spec(tmp_path / "s.yaml", spec_dict("synthetic:derm-synth?n=48", tmp_path / "out",
                                                                selection_metric="auc")))
    plan = make_plan(spec)
    assert {plan.train_config(m).select_on for m in plan.models} == {"auc"}
    # fingerprinted once, as selection_metric: storages planned before select_on existed still match
    assert all("select_on" not in json.loads(f)["train"] for f in plan.fingerprints.values())
