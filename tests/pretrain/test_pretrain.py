"""`medattn pretrain`: NT-Xent by hand, MICLe's positives, and an encoder that `init: ssl:RUN_DIR` loads."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from medattn.data.synthetic import generate_derm_synth
from medattn.errors import DataError, ModelError
from medattn.models.build import build_model
from medattn.pretrain.contrastive import micle_partners, nt_xent
from medattn.pretrain.run import PretrainConfig, pretrain


def test_nt_xent_equals_the_simclr_formula_by_hand():
    """l(i, j) = -log(exp(s_ij / t) / sum_{k != i} exp(s_ik / t)), averaged over all 2B anchors."""
    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(3, 5, generator=g), torch.randn(3, 5, generator=g)
    z = [v / v.norm() for v in torch.cat([z1, z2])]
    t, n, total = 0.5, 3, 0.0
    for i in range(2 * n):
        j = (i + n) % (2 * n)
        denominator = sum(math.exp(float(z[i] @ z[k]) / t) for k in range(2 * n) if k != i)
        total += -math.log(math.exp(float(z[i] @ z[j]) / t) / denominator)
    assert float(nt_xent(z1, z2, t)) == pytest.approx(total / (2 * n), rel=1e-5)


def test_micle_partners_are_other_members_of_the_group():
    groups = np.array(["a", "b", "a", "c", "a", "b"])
    rng = np.random.default_rng(0)
    seen = {i: set() for i in range(len(groups))}
    for _ in range(200):
        partner = micle_partners(groups, rng)
        for i, j in enumerate(partner):
            seen[i].add(int(j))
    assert seen == {0: {2, 4}, 2: {0, 4}, 4: {0, 2}, 1: {5}, 5: {1}, 3: {3}}  # c is alone: its own partner


@pytest.fixture(scope="module")
def ssl_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ssl")
    data = generate_derm_synth(n=40, size=32)
    data.group = (np.arange(40) // 2).astype(str)  # pairs of images as "lesions"
    cfg = PretrainConfig(method="micle", stem="standard", epochs=1, batch_size=8, precision="fp32")
    record = pretrain(data, cfg, 0, out)
    return out, record


def test_pretrain_writes_an_encoder_that_init_ssl_loads(ssl_run):
    out, record = ssl_run
    assert record["train_images"] == 24 and len(record["history"]) == 1  # derm-synth's train split: 60 %
    assert json.loads((out / "pretrain.json").read_text())["config"]["method"] == "micle"
    encoder = load_file(str(out / "encoder.safetensors"))
    assert not any(k.startswith("fc.") for k in encoder)
    model = build_model("resnet18", "se", image_size=32, stem="standard", init_from=f"ssl:{out}")
    init = model.medattn_spec["init"]
    assert init["loaded"] == len(encoder) and init["unexpected"] == []
    assert sorted(init["new"]) == sorted(k for k in model.state_dict() if ".se." in k or k.startswith("fc."))
    assert torch.equal(model.state_dict()["layer3.0.conv1.weight"], encoder["layer3.0.conv1.weight"])
    with pytest.raises(ModelError, match="lacks backbone weight|shape"):
        build_model("efficientnet_b0", image_size=32, init_from=f"ssl:{out}")


def test_micle_needs_groups_and_ssl_needs_a_run(tmp_path):
    data = generate_derm_synth(n=20, size=32)
    data.group = None
    with pytest.raises(DataError, match="micle needs a group column"):
        pretrain(data, PretrainConfig(method="micle", epochs=1), 0, None)
    with pytest.raises(ModelError, match="run `medattn pretrain`"):
        build_model("resnet18", image_size=32, init_from=f"ssl:{tmp_path}")


def test_pretrain_cli_writes_an_encoder_and_refuses_bad_options_in_one_line(tmp_path, capsys, monkeypatch):
    import sys

    from medattn.cli import main

    def run(*args: str) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "argv", ["medattn", "pretrain", "--data", "synthetic:derm-synth?n=20&size=32",
                                          "--out", str(tmp_path / "ssl"), "--stem", "standard", "--epochs", "1",
                                          "--batch-size", "4", "--precision", "fp32", *args])
        with pytest.raises(SystemExit) as exited:
            main()
        out = capsys.readouterr()
        return exited.value.code, out.out, out.err

    code, out, _ = run()
    assert code in (0, None) and "simclr on 12 training images" in out and "init: ssl:" in out
    assert load_file(str(tmp_path / "ssl" / "encoder.safetensors"))  # the weights init: ssl: reads
    code, _, err = run("--temperature", "0")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "--temperature" in err
    code, _, err = run("--method", "byol")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "--method" in err


def test_micle_partner_on_derm_synth_views_is_the_other_photograph_of_the_same_lesion():
    """views=2: images 2j and 2j + 1 are the two photographs of lesion j, so each is the other's only positive."""
    data = generate_derm_synth(n=40, size=32, views=2, artefacts=())
    train = data.indices("train").numpy()
    partner = train[micle_partners(data.group[train], np.random.default_rng(0))]
    assert len(train) == 24  # floor(0.60 x 20 lesions) = 12 lesions, both photographs of each
    assert (partner == train ^ 1).all()  # 2j <-> 2j + 1: another image, same lesion
    assert torch.equal(data.labels[partner], data.labels[train])
