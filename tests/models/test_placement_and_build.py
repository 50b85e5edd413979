"""Placement as data (validated, merged with defaults, applied where it says) and build_model's contract."""

from __future__ import annotations

import pytest
import timm
import torch
from timm.layers import NonLocalAttn, SEModule
from timm.layers.cbam import CbamModule

from medattn.attention.augmented import AugmentedConv2d
from medattn.attention.channel_spatial import BottleneckAttentionModule
from medattn.attention.local import LocalSelfAttention2d
from medattn.attention.mhsa import MultiHeadSelfAttention2d
from medattn.errors import ModelError
from medattn.models import build_model
from medattn.models.backbones import swin_geometry, vit_patch_size
from medattn.models.stem import default_stem


def count(model: torch.nn.Module, cls: type) -> int:
    """How many modules of type `cls` the model holds."""
    return sum(isinstance(m, cls) for m in model.modules())


def where_are(model: torch.nn.Module, cls: type) -> list[str]:
    """Dotted paths of the modules of type `cls`."""
    return [n for n, m in model.named_modules() if isinstance(m, cls)]


def test_default_placements_follow_the_papers():
    assert count(build_model("resnet18", "se", image_size=28), SEModule) == 8  # every block
    assert where_are(build_model("resnet18", "bam", image_size=28), BottleneckAttentionModule) == \
        ["layer1.2", "layer2.2", "layer3.2"]  # between stages
    assert where_are(build_model("resnet50", "nonlocal", image_size=28), NonLocalAttn) == ["layer3.6"]
    assert where_are(build_model("efficientnet_b0", "nonlocal", image_size=28), NonLocalAttn) == ["blocks.4.3"]
    assert where_are(build_model("resnet50", "mhsa", image_size=28), MultiHeadSelfAttention2d) == \
        ["layer4.0.conv2", "layer4.1.conv2", "layer4.2.conv2"]  # BoTNet: every block of the last stage


def test_placement_dict_picks_stages_and_last_blocks():
    model = build_model("resnet50", "cbam", image_size=28, placement={"stages": [3, 4], "blocks": 1})
    assert where_are(model, CbamModule) == ["layer3.5.se", "layer4.2.se"]
    model = build_model("resnet18", "local", image_size=28, placement={"stages": [3, 4], "blocks": 1})
    assert where_are(model, LocalSelfAttention2d) == ["layer3.1.conv2", "layer4.1.conv2"]


def test_stage_end_blocks_count_modules_in_a_row():
    model = build_model("convnext_atto", "nonlocal", image_size=28, placement={"stages": [2], "blocks": 2})
    assert where_are(model, NonLocalAttn) == ["stages.1.blocks.2", "stages.1.blocks.3"]


def test_conv_replacement_sees_the_feature_size_and_stride_of_the_conv_it_replaces():
    model = build_model("resnet50", "mhsa", image_size=64, placement={"stages": [2]}, small_stem=True)
    first, second = model.layer2[0].conv2, model.layer2[1].conv2
    assert first.pos.feat_size == (64, 64) and isinstance(first.pool, torch.nn.AvgPool2d)  # strided block
    assert second.pos.feat_size == (32, 32) and isinstance(second.pool, torch.nn.Identity)
    model = build_model("efficientnet_b0", "aa", image_size=224, placement={"stages": [6], "blocks": 4})
    aa = model.blocks[5][0].conv_dw  # 5x5 depthwise, stride 2, 14x14 input
    assert isinstance(aa, AugmentedConv2d)
    assert aa.conv.kernel_size == (5, 5) and aa.conv.stride == (2, 2) and aa.conv.groups == aa.conv.in_channels
    assert aa.pos.feat_size == (7, 7)


def test_convnext_gates_sit_on_the_residual_branch():
    model = build_model("convnext_atto", "se", image_size=28)
    block = model.stages[0].blocks[0]
    assert isinstance(block.drop_path[0], SEModule)
    assert count(model, SEModule) == 12


def _stem_stride(model) -> int:
    """Total downsampling before the first stage, measured on an input (independent of how it is built)."""
    x = torch.zeros(1, model.medattn_spec["in_chans"], 32, 32)
    stem = torch.nn.Sequential(model.conv1, model.bn1, model.act1, model.maxpool) if hasattr(model, "conv1") \
        else model.stem if hasattr(model, "stem") else model.conv_stem
    return 32 // stem(x).shape[-1]


@pytest.mark.parametrize(("backbone", "stem", "stride"), [
    ("resnet18", "s1", 1), ("resnet18", "s2", 2), ("resnet18", "standard", 4),
    ("convnext_atto", "s1", 1), ("convnext_atto", "s2", 2), ("convnext_atto", "standard", 4),
    ("efficientnet_b0", "s1", 1), ("efficientnet_b0", "s2", 2), ("efficientnet_b0", "standard", 2),
])
def test_each_stem_downsamples_as_named_and_is_recorded(backbone, stem, stride):
    model = build_model(backbone, image_size=32, stem=stem).eval()
    assert _stem_stride(model) == stride and model.medattn_spec["stem"] == stem


def test_stem_follows_the_policy_and_small_stem_overrides_it():
    for size in (28, 64, 224):
        assert build_model("resnet18", image_size=size).medattn_spec["stem"] == default_stem(size)
    assert build_model("resnet18", image_size=96, small_stem=True).conv1.stride == (1, 1)
    assert build_model("resnet18", image_size=28, small_stem=False).medattn_spec["stem"] == "standard"
    assert build_model("efficientnet_b0", image_size=28, in_chans=1).conv_stem.in_channels == 1
    assert build_model("vit_tiny", image_size=28).medattn_spec["stem"] == "patch"


@pytest.mark.parametrize(("backbone", "timm_name", "attention", "timm_args"), [
    ("resnet18", "resnet18", "none", {}),
    ("resnet18", "resnet18", "se", {"block_args": {"attn_layer": "se"}}),
    ("resnet50", "resnet50", "cbam", {"block_args": {"attn_layer": "cbam"}}),
])
def test_default_builds_equal_timm_models(backbone, timm_name, attention, timm_args):
    ours = build_model(backbone, attention, image_size=224).eval()
    theirs = timm.create_model(timm_name, pretrained=False, num_classes=2, **timm_args).eval()
    theirs.load_state_dict(ours.state_dict())
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        assert torch.allclose(ours(x), theirs(x), atol=1e-5, rtol=0)


def test_plain_efficientnet_has_no_squeeze_excitation():
    from timm.models._efficientnet_blocks import SqueezeExcite

    plain = build_model("efficientnet_b0", "none", image_size=28)
    assert count(plain, SqueezeExcite) == count(plain, SEModule) == 0
    assert all(isinstance(b.se, torch.nn.Identity) for stage in plain.blocks for b in stage)


def test_efficientnet_with_se_is_efficientnet_b0_itself():
    theirs = timm.create_model("efficientnet_b0", pretrained=False, num_classes=2).eval()
    ours = build_model("efficientnet_b0", "se", image_size=224).eval()
    renamed = {k.replace("se.conv_reduce", "se.fc1").replace("se.conv_expand", "se.fc2"): v
               for k, v in theirs.state_dict().items()}
    ours.load_state_dict(renamed)  # strict: same modules, same shapes
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        assert torch.allclose(ours(x), theirs(x), atol=1e-5, rtol=0)
    assert build_model("efficientnet_b0", "se", image_size=28, rd_ratio=0.5).blocks[1][0].se.fc1.out_channels == 48


def test_rebuilding_from_the_spec_reloads_a_checkpoint_exactly():
    model = build_model("resnet18", "aa", image_size=28, placement={"stages": [3, 4]}, heads=4).eval()
    spec = model.medattn_spec
    assert spec == {"backbone": "resnet18", "attention": "aa", "image_size": 28, "in_chans": 3,
                    "placement": {"stages": [3, 4], "where": "replace_3x3", "blocks": "all"},
                    "options": {"heads": 4}, "stem": default_stem(28)}
    again = build_model(spec["backbone"], spec["attention"], image_size=28, placement=spec["placement"],
                        **spec["options"]).eval()
    again.load_state_dict(model.state_dict())
    x = torch.randn(2, 3, 28, 28)
    with torch.no_grad():
        assert torch.equal(model(x), again(x))


def test_nl_alias_builds_the_non_local_block():
    assert build_model("resnet18", "nl", image_size=28).medattn_spec["attention"] == "nonlocal"


def test_transformer_geometry_follows_the_image_size():
    assert [vit_patch_size(s) for s in (28, 64, 224)] == [2, 4, 16]
    assert [swin_geometry(s) for s in (28, 64, 224)] == [(1, 7), (2, 8), (4, 7)]
    vit = build_model("vit_tiny", image_size=64, in_chans=1)
    assert vit.patch_embed.grid_size == (16, 16)
    assert build_model("swin_tiny", image_size=28).patch_embed.grid_size == (28, 28)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"backbone": "resnet34"}, "unknown backbone 'resnet34'; use one of resnet18, resnet50, efficientnet_b0"),
    ({"attention": "sk"}, "unknown attention 'sk'; use one of none, se"),
    ({"backbone": "vit_tiny", "attention": "se"}, "transformer baseline and takes attention 'none' only"),
    ({"attention": "none", "heads": 2}, "attention 'none' takes no options"),
    ({"attention": "se", "heads": 2}, "unknown option 'heads' for attention 'se'"),
    ({"attention": "mhsa", "stride": 2}, "option 'stride' of 'mhsa' is set by the placement"),
    ({"attention": "se", "placement": {"stage": [1]}}, "unknown placement key(s) stage; valid keys: stages, where"),
    ({"attention": "se", "placement": [3, 4]}, "placement must be a dict"),
    ({"attention": "se", "placement": {"where": "replace_3x3"}}, "attention 'se' cannot go at where='replace_3x3'"),
    ({"attention": "mhsa", "placement": {"where": "middle"}}, "where='middle' is not valid; use one of after_conv"),
    ({"attention": "bam", "placement": {"stages": [5]}}, "placement stage 5 does not exist; this backbone has "
                                                          "stages 1..4"),
    ({"attention": "bam", "placement": {"stages": "first"}}, "stages='first' is not valid"),
    ({"attention": "bam", "placement": {"stages": []}}, "must be a non-empty list"),
    ({"attention": "bam", "placement": {"stages": [2, 2]}}, "lists a stage twice"),
    ({"attention": "cbam", "placement": {"blocks": 0}}, "blocks=0 must be a positive integer or 'all'"),
    ({"attention": "cbam", "placement": {"blocks": 3}}, "blocks=3 but stage 1 has only 2 blocks"),
    ({"attention": "local", "heads": 7}, "heads=7 must divide the 512 output channels"),
    ({"image_size": 4}, "image_size=4 must be an integer >= 8"),
    ({"in_chans": 0}, "in_chans=0 must be an integer >= 1"),
])
def test_impossible_models_are_refused_with_one_clear_line(kwargs, message):
    args = {"backbone": "resnet18", "attention": "none", "image_size": 28, **kwargs}
    with pytest.raises(ModelError) as err:
        build_model(args.pop("backbone"), args.pop("attention"), **args)
    assert message in str(err.value) and "\n" not in str(err.value)
