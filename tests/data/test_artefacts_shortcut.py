"""shortcut_* dataset-spec options (data/shortcut.py): presence rates by the stated rule, the test_ood copy,
concepts and masks a folder dataset gains, and one-line exit-2 errors from the CLI."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from helpers.artefacts import make_template_folder
from PIL import Image

from medattn.data.artefacts import TYPES
from medattn.data.dataset_spec import LoadContext, load_dataset
from medattn.data.shortcut import presence

N = 120


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> dict:
    """A 120-image folder dataset (classes a / b, 24 x 24, lesion masks) and a tiny template folder."""
    root = tmp_path_factory.mktemp("derm")
    rng = np.random.default_rng(0)
    (root / "images").mkdir()
    (root / "masks").mkdir()
    yy, xx = np.mgrid[:24, :24]
    for i in range(N):
        img = (rng.integers(90, 160, (24, 24, 3))).astype(np.uint8)
        Image.fromarray(img).save(root / "images" / f"im{i}.png")
        Image.fromarray(((np.hypot(yy - 12, xx - 12) < 4) * 255).astype(np.uint8)).save(root / "masks" / f"im{i}.png")
    pd.DataFrame({"id": [f"im{i}" for i in range(N)], "label": np.where((np.arange(N) // 2) % 3 == 0, "a", "b"),
                  "lesion": [f"L{i // 2}" for i in range(N)], "age": np.arange(N)}
                 ).to_csv(root / "labels.csv", index=False)
    templates = make_template_folder(tmp_path_factory.mktemp("templates"))
    base = f"folder:{root}?images=images&labels=labels.csv&masks=masks&group=lesion&size=24&seed=1"
    return {"base": base, "templates": templates, "ctx": LoadContext(cache_dir=root / "cache")}


def test_presence_follows_the_correlation_rule_and_is_independent_in_ood():
    """P(artefact | target) = c, P(artefact | other) = 1 - c, 0.5 where independent; types independent."""
    rng = np.random.default_rng(0)
    n = 40000
    labels = np.arange(n) % 4
    ood = np.arange(n) >= 3 * n // 4
    drawn = presence(labels, 2, 0.9, rng, independent=ood)
    assert set(drawn) == set(TYPES)
    ink = drawn["ink"]
    se = np.sqrt(0.25 / (n / 16))
    for (cls, in_ood), p in {(2, False): 0.9, (0, False): 0.1, (3, False): 0.1, (2, True): 0.5, (1, True): 0.5}.items():
        sel = (labels == cls) & (ood == in_ood)
        assert abs(ink[sel].mean() - p) < 4 * se, (cls, in_ood)
    both = drawn["ink"] & drawn["ruler"]
    sel = (labels == 2) & ~ood
    assert abs(both[sel].mean() - 0.81) < 4 * se  # drawn independently: 0.9 x 0.9


def test_folder_dataset_gains_flags_masks_and_a_paired_test_ood(folder):
    plain = load_dataset(folder["base"], folder["ctx"])
    spec = (folder["base"] + f"&shortcut=ink,bubble&shortcut_class=a&shortcut_corr=1&shortcut_seed=3"
            f"&shortcut_templates={folder['templates']}&shortcut_field=24x24")
    data = load_dataset(spec, folder["ctx"])
    n_test = int((plain.split == "test").sum())
    assert data.images.shape[0] == N + n_test and int((data.split == "test_ood").sum()) == n_test
    assert data.source.startswith(folder["base"]) and f"shortcut_templates={folder['templates']}" in data.source
    test, ood = np.flatnonzero(data.split == "test"), np.flatnonzero(data.split == "test_ood")
    assert (data.labels[ood] == data.labels[test]).all() and (data.group[ood] == data.group[test]).all()
    assert list(data.concepts.index[ood]) == [f"{i}@ood" for i in data.concepts.index[test]]
    labels = data.labels.numpy()
    a = data.class_names.index("a")
    for t in ("ink", "bubble"):
        flag = data.concepts[t].to_numpy().astype(bool)
        in_dist = data.split != "test_ood"
        assert (flag[in_dist] == (labels[in_dist] == a)).all()  # corr = 1: present exactly on class a
        assert 0 < flag[ood].mean() < 1  # independent of the class there
        assert (data.artefact_masks[t].reshape(len(flag), -1).numpy().any(1) == flag).all()
    # pixels outside every artefact mask are the plain images' (test_ood: the test images')
    both = np.concatenate([np.arange(N), test])
    before = plain.images.numpy()[np.concatenate([np.arange(N), np.flatnonzero(plain.split == "test")])]
    assert len(both) == len(before)
    outside = ~(data.artefact_masks["ink"] | data.artefact_masks["bubble"]).numpy().astype(bool)
    diff = np.abs(data.images.numpy().astype(int) - before.astype(int)).max(1)
    assert diff[outside].max() <= 6 and diff[~outside].max() > 20


def test_same_spec_same_images(folder):
    spec = (folder["base"] + f"&shortcut=ruler&shortcut_class=b&shortcut_corr=0.7"
            f"&shortcut_templates={folder['templates']}&shortcut_ood=0")
    a, b = load_dataset(spec, folder["ctx"]), load_dataset(spec, folder["ctx"])
    assert "test_ood" not in a.split and np.array_equal(a.images.numpy(), b.images.numpy())


@pytest.mark.parametrize(("options", "expect"), [
    ("shortcut=sticker&shortcut_class=a", "unknown artefact type 'sticker'; use a comma list of ruler, bubble"),
    ("shortcut=ink&shortcut_class=a&shortcut_corr=1.5", "shortcut_corr=1.5 must lie in [0, 1]"),
    ("shortcut=ink&shortcut_class=a&shortcut_templates=NOMETA", "has no meta.json"),
    ("shortcut=ink&shortcut_class=zebra", "shortcut_class=zebra is not a class; use one of a, b"),
    ("shortcut=ink", "shortcut_class=CLASS is required"),
    ("shortcut_corr=0.9", "need shortcut=TYPES"),
])
def test_bad_shortcut_options_exit_2_with_one_line(folder, tmp_path, capsys, monkeypatch, options, expect):
    """`medattn data info SPEC` (the console script's entry function) exits 2 with one line naming the option."""
    import sys

    from medattn.cli import main

    (tmp_path / "nometa").mkdir()
    spec = folder["base"] + "&" + options.replace("NOMETA", str(tmp_path / "nometa"))
    if "templates" not in options:
        spec += f"&shortcut_templates={folder['templates']}"
    monkeypatch.setattr(sys, "argv", ["medattn", "data", "info", spec, "--cache-dir", str(tmp_path / "cache")])
    with pytest.raises(SystemExit) as exited:
        main()
    err = capsys.readouterr().err
    assert exited.value.code == 2, err
    assert len(err.strip().splitlines()) == 1 and expect in err, err


@pytest.mark.parametrize(("options", "expect"), [
    ("shortcut=sticker&shortcut_class=a", "unknown artefact type 'sticker'"),
    ("shortcut=ink&shortcut_class=a&shortcut_corr=-0.1", "shortcut_corr=-0.1 must lie in [0, 1]"),
    ("shortcut=ink&shortcut_class=a&shortcut_templates=NOMETA", "has no meta.json"),
])
def test_bad_shortcut_in_a_study_spec_is_file_line_exit_2(folder, tmp_path, capsys, monkeypatch, options, expect):
    """`medattn study run spec.yaml` names the spec file and the dataset's line, in one line, and exits 2."""
    import sys

    from medattn.cli import main

    (tmp_path / "nometa").mkdir()
    spec = folder["base"] + "&" + options.replace("NOMETA", str(tmp_path / "nometa"))
    if "templates" not in options:
        spec += f"&shortcut_templates={folder['templates']}"
    path = tmp_path / "study.yaml"
    path.write_text(f"name: bad\ndatasets:\n  - name: d\n    spec: \"{spec}\"\nmodels:\n  grid:\n"
                    f"    backbones: [resnet18]\ntuning: {{trials: 0}}\nseeds: 1\noutput: {tmp_path / 'out'}\n"
                    f"cache_dir: {tmp_path / 'cache'}\n")
    monkeypatch.setattr(sys, "argv", ["medattn", "study", "run", str(path), "--workers", "0"])
    with pytest.raises(SystemExit) as exited:
        main()
    err = capsys.readouterr().err
    assert exited.value.code == 2, err
    assert len(err.strip().splitlines()) == 1 and f"{path.name}:4: datasets[0].spec" in err and expect in err, err


def test_probe_inserts_the_datasets_real_artefact(folder):
    """A planted ink detector (any pixel with green < 60: the template's ink multiplies green by 64/255, the
    images' green is >= 90) flips every clean test image when the probe inserts the real ink, and every inked one
    back when the removal probe inpaints its mask; a type the shortcut lacks is refused."""
    import torch

    from medattn.analysis.probes import ProbeOptions, probe_run
    from medattn.data.shortcut import insert_like
    from medattn.errors import DataError

    spec = (folder["base"] + f"&shortcut=ink&shortcut_class=a&shortcut_corr=0.8&shortcut_ood=0"
            f"&shortcut_templates={folder['templates']}&shortcut_field=24x24")
    data = load_dataset(spec, folder["ctx"])
    assert insert_like(data, np.arange(3), "bubble") is None

    def detector(images: torch.Tensor) -> np.ndarray:
        inked = (images[:, 1] < 60).flatten(1).any(1).numpy()
        return np.stack([inked, ~inked], 1).astype(float)  # class 0 = a

    rows = {r["probe"]: r for r in probe_run(detector, data, ProbeOptions(artefacts=("ink",), bootstrap=50), 0)}
    assert rows["insert"]["flip_rate"] == 1.0 and rows["remove"]["flip_rate"] == 1.0
    with pytest.raises(DataError, match="real template type"):
        probe_run(detector, data, ProbeOptions(artefacts=("bubble",), bootstrap=50), 0)
