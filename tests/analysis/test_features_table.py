"""The feature table: encoding, age bins, the --features file join, and the study spec's `features:` block."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from medattn.analysis.features import build_feature_table, encode_feature, image_ids, read_feature_file
from medattn.data.synthetic import generate_derm_synth
from medattn.errors import DataError, SpecError
from medattn.study.spec import parse_spec_text


def test_encoding_keeps_levels_bins_many_numbers_and_marks_missing():
    codes, levels = encode_feature(pd.Series(["b", "a", None, "b"]))
    assert codes.tolist() == [1, 0, -1, 1] and levels == ["a", "b"]
    codes, levels = encode_feature(pd.Series(np.arange(100.0)))
    assert len(levels) == 4 and np.bincount(codes).tolist() == [25, 25, 25, 25]


def test_derm_synth_table_has_concepts_artefacts_and_abcd_and_skips_constants(tmp_path):
    data = generate_derm_synth(n=60, size=32, seed=0, artefacts=("patch",))
    data.concepts["constant"] = 1
    extra = tmp_path / "f.csv"
    pd.DataFrame({"id": ["3", "1", "999"], "scanner": ["a", "b", "c"]}).to_csv(extra, index=False)
    table = build_feature_table(data, extra)
    assert {"asymmetry", "abcd_asymmetry", "patch", "hair", "diameter_px", "scanner"} <= set(table.table.columns)
    assert table.skipped == {"constant": "constant over all images"}
    assert table.source["patch"] == "concept" and table.source["diameter_px"] == "abcd"
    # the ground-truth concept keeps its name; the mask measure of the same name is prefixed
    assert table.source["asymmetry"] == "concept" and table.source["abcd_asymmetry"] == "abcd"
    assert table.table["asymmetry"].tolist() == data.concepts["asymmetry"].tolist()
    assert table.source["scanner"] == "file"
    assert table.table["scanner"].iloc[[1, 3]].tolist() == ["b", "a"] and table.table["scanner"].isna().sum() == 58


def test_feature_file_errors_name_the_file_and_the_column(tmp_path):
    ids = np.array(["ISIC_1", "ISIC_2"])
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"image": ["ISIC_1"], "f": [1]}).to_csv(bad, index=False)
    with pytest.raises(DataError, match=r"bad\.csv: no id column \(one of id, image_id"):
        read_feature_file(bad, ids)
    other = tmp_path / "other.csv"
    pd.DataFrame({"image_id": ["X"], "f": [1]}).to_csv(other, index=False)
    with pytest.raises(DataError, match=r"other\.csv column 'image_id': none of its 1 ids"):
        read_feature_file(other, ids)
    ok = tmp_path / "ok.csv"
    pd.DataFrame({"image_id": ["ISIC_2"], "age": [52.0]}).to_csv(ok, index=False)
    assert read_feature_file(ok, ids)["age_bin"].tolist()[1] == "45-60"


def test_image_ids_come_from_the_concept_index_when_named():
    data = generate_derm_synth(n=5, size=32, seed=0)
    assert image_ids(data).tolist() == ["0", "1", "2", "3", "4"]
    data.concepts.index = pd.Index([f"c{i}" for i in range(5)], name="case_num")
    assert image_ids(data).tolist()[0] == "c0"


SPEC = """name: s
datasets: [synthetic:derm-synth]
models: {grid: {backbones: [resnet18], attentions: [se]}}
train: {save_epochs: [2, 4]}
features: FEATURES
"""


def test_study_spec_features_block_is_validated():
    spec = parse_spec_text(SPEC.replace("FEATURES", "{epochs: [2, 4, final], probes: [patch, ink], correction: bh}"))
    assert spec.features.epochs == [2, 4, "final"] and spec.features.probes == ["patch", "ink"]
    with pytest.raises(SpecError, match="features.epochs \\[3\\] are not saved; add them to train.save_epochs"):
        parse_spec_text(SPEC.replace("FEATURES", "{epochs: [3]}"))
    with pytest.raises(SpecError, match="unknown artefact 'sticker'; valid names: patch, ruler, ink"):
        parse_spec_text(SPEC.replace("FEATURES", "{probes: [sticker]}"))
    assert parse_spec_text(SPEC.replace("FEATURES", "{split: test_ood}")).features.split == "test_ood"
    with pytest.raises(SpecError, match="features.split"):
        parse_spec_text(SPEC.replace("FEATURES", "{split: train}"))  # the weights were fitted on it


def test_the_features_block_split_reaches_the_usage_test_and_the_probes(monkeypatch, tmp_path):
    import medattn.analysis.probes as probes
    import medattn.analysis.usage as usage
    from medattn.analysis.spec import FeaturesSpec, run_feature_analysis

    seen = {}
    monkeypatch.setattr(usage, "usage_table", lambda out, opts: seen.setdefault("usage", opts.split))
    monkeypatch.setattr(probes, "probe_table", lambda out, opts: seen.setdefault("probes", opts.split))
    run_feature_analysis(FeaturesSpec(probes=["ink"], split="test_ood"), tmp_path)
    assert seen == {"usage": "test_ood", "probes": "test_ood"}


def test_prediction_is_the_class_or_the_binned_positive_probability():
    from medattn.analysis.usage import prediction_codes

    probs = np.c_[np.linspace(1, 0, 8), np.linspace(0, 1, 8)]
    assert prediction_codes(probs, "class", 1).tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    assert prediction_codes(probs, "probability", 1).tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
