"""`init: file:PATH`: backbone weights from a checkpoint the test saves itself (timm, torchvision, medattn)."""

from __future__ import annotations

import hashlib
import json
import sys

import pytest
import timm
import torch
from safetensors.torch import save_file

from medattn.errors import ModelError
from medattn.models.build import build_model


@pytest.fixture(scope="module")
def timm_resnet18(tmp_path_factory):
    """A timm ResNet-18 (random weights, ImageNet head of 1000 classes) saved as a torch .pth state dict."""
    torch.manual_seed(0)
    net = timm.create_model("resnet18", num_classes=1000)
    path = tmp_path_factory.mktemp("ckpt") / "resnet18_in1k.pth"
    torch.save(net.state_dict(), path)
    return path, net.state_dict()


def test_file_init_loads_backbone_and_reports_new_and_unexpected_keys(timm_resnet18):
    path, state = timm_resnet18
    model = build_model("resnet18", "se", num_classes=3, image_size=64, stem="standard", init_from=f"file:{path}")
    record = model.medattn_spec["init"]
    own = model.state_dict()
    se_keys = sorted(k for k in own if ".se." in k)
    assert len(se_keys) == 8 * 4  # one SE (fc1, fc2: weight and bias) in each of the 8 basic blocks
    assert sorted(record["new"]) == sorted([*se_keys, "fc.weight", "fc.bias"])
    assert sorted(record["unexpected"]) == ["fc.bias", "fc.weight"]  # the 1000-class ImageNet head
    assert record["loaded"] == len(state) - 2
    assert record["adapted"] == []
    assert record["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    for key in ("conv1.weight", "layer3.1.bn2.running_var", "layer4.0.downsample.0.weight"):
        assert torch.equal(own[key], state[key])
    assert own["fc.weight"].shape == (3, 512)


def test_one_channel_first_conv_is_the_rgb_sum(timm_resnet18):
    """A grey image x through the adapted network gives the RGB network's features of (x, x, x)."""
    path, state = timm_resnet18
    grey = build_model("resnet18", "none", in_chans=1, image_size=64, stem="standard", init_from=f"file:{path}")
    rgb = build_model("resnet18", "none", in_chans=3, image_size=64, stem="standard", init_from=f"file:{path}")
    assert grey.medattn_spec["init"]["adapted"] == ["conv1.weight"]
    assert torch.allclose(grey.state_dict()["conv1.weight"], state["conv1.weight"].sum(1, keepdim=True))
    x = torch.rand(2, 1, 64, 64)
    with torch.no_grad():
        a, b = grey.eval().forward_features(x), rgb.eval().forward_features(x.expand(-1, 3, -1, -1))
    assert torch.allclose(a, b, atol=1e-4)


def test_medattn_and_torchvision_checkpoints_load(tmp_path):
    """A trained medattn model's safetensors (with its own attention and head) and torchvision's key names."""
    torchvision = pytest.importorskip("torchvision")
    src = build_model("resnet18", "cbam", num_classes=2, image_size=64, stem="standard")
    path = tmp_path / "model.safetensors"
    save_file({k: v.contiguous() for k, v in src.state_dict().items()}, str(path))
    model = build_model("resnet18", "se", num_classes=4, image_size=64, stem="standard", init_from=f"file:{path}")
    record = model.medattn_spec["init"]
    plain = timm.create_model("resnet18").state_dict()
    cbam = [k for k in src.state_dict() if k not in plain]  # medattn installs CBAM at block.se
    assert len(cbam) == 8 * 8 and all(".se.channel." in k or ".se.spatial." in k for k in cbam)
    assert sorted(record["unexpected"]) == sorted([*cbam, "fc.weight", "fc.bias"])
    assert torch.equal(model.state_dict()["layer2.0.conv1.weight"], src.state_dict()["layer2.0.conv1.weight"])
    tv = torchvision.models.resnet18(weights=None)
    torch.save(tv.state_dict(), tmp_path / "tv.pth")
    model = build_model("resnet18", "none", image_size=64, stem="standard", init_from=f"file:{tmp_path / 'tv.pth'}")
    assert torch.equal(model.state_dict()["layer1.0.conv2.weight"], tv.state_dict()["layer1.0.conv2.weight"])


@pytest.fixture(scope="module")
def resnet50_file(tmp_path_factory):
    """A ResNet-50 state dict: the wrong backbone for a ResNet-18 (bottleneck blocks, other shapes)."""
    path = tmp_path_factory.mktemp("r50") / "r50.safetensors"
    save_file(timm.create_model("resnet50", num_classes=10).state_dict(), str(path))
    return path


def test_mismatched_backbone_and_stem_are_refused(tmp_path, timm_resnet18, resnet50_file):
    r50 = resnet50_file
    with pytest.raises(ModelError, match="shape .* in the checkpoint but .* in resnet18"):
        build_model("resnet18", image_size=64, stem="standard", init_from=f"file:{r50}")
    with pytest.raises(ModelError, match="lacks backbone weight 'conv_stem.weight' of efficientnet_b0"):
        build_model("efficientnet_b0", image_size=64, init_from=f"file:{timm_resnet18[0]}")
    with pytest.raises(ModelError, match="use stem: s2 or standard"):
        build_model("resnet18", image_size=32, stem="s1", init_from=f"file:{timm_resnet18[0]}")
    with pytest.raises(ModelError, match="not found"):
        build_model("resnet18", image_size=64, init_from=f"file:{tmp_path / 'none.pth'}")


def test_cli_refuses_a_mismatched_backbone_in_one_line_with_exit_2(tmp_path, capsys, monkeypatch, resnet50_file):
    from medattn.cli import main

    r50 = resnet50_file
    monkeypatch.setattr(sys, "argv", ["medattn", "train", "--data", "synthetic:derm-synth?n=24&size=32", "--epochs",
                                      "1", "--out", str(tmp_path / "run"), "--init", f"file:{r50}"])
    with pytest.raises(SystemExit) as exited:
        main()
    out = capsys.readouterr()
    assert exited.value.code == 2
    lines = [line for line in (out.out + out.err).strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "in the checkpoint but" in lines[0] and "r50.safetensors" in lines[0]


def test_trained_run_records_the_checkpoint_hash_in_model_json(tmp_path, timm_resnet18):
    from medattn.data.synthetic import generate_derm_synth
    from medattn.rundir import layout
    from medattn.train.config import ModelConfig, TrainConfig
    from medattn.train.loop import train_run

    path, _ = timm_resnet18
    data = generate_derm_synth(n=32, size=32)
    cfg = ModelConfig(backbone="resnet18", stem="s2", init=f"file:{path}")
    train_run(data, cfg, TrainConfig(epochs=1, batch_size=16, progress=False, device="cpu", precision="fp32"), 0,
              tmp_path)
    sidecar = json.loads((tmp_path / layout.SIDECAR).read_text())
    assert sidecar["model"]["init"] == f"file:{path}"
    assert sidecar["model"]["init_record"]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
