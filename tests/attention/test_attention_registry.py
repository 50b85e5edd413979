"""The registry: every mechanism is described, buildable with one calling convention, and validates options."""

from __future__ import annotations

import pytest
import torch
from timm.layers import EcaModule, GlobalContext, NonLocalAttn, SEModule
from timm.layers.cbam import CbamModule

from medattn.attention import FAMILIES, MECHANISMS, WHERE, create_attention, get_mechanism, mechanism_names
from medattn.errors import ModelError

REPLACING = [n for n, m in MECHANISMS.items() if "replace_3x3" in m.placements]
GATING = [n for n, m in MECHANISMS.items() if m.factory is not None and n not in REPLACING]
REQUIRED = {"none", "se", "eca", "cbam", "bam", "gc", "nonlocal", "mhsa", "local", "aa"}


def context(name: str, out: int = 32, stride: int = 1, size: int = 9) -> dict:
    """The keyword arguments a placement would pass to a conv-replacing mechanism."""
    full = {"out_channels": out, "stride": stride, "feat_size": (size, size), "kernel_size": 3, "groups": 1,
            "bias": False}
    return {k: v for k, v in full.items() if k in MECHANISMS[name].context}


def test_every_required_mechanism_is_registered_and_described():
    assert REQUIRED <= set(mechanism_names())
    for m in MECHANISMS.values():
        assert m.family in FAMILIES
        assert set(m.placements) <= set(WHERE)
        assert m.paper and m.summary
        if m.factory is not None:
            assert m.default_placement["where"] in m.placements
            assert set(m.default_placement) == {"stages", "where", "blocks"}


def test_timm_mechanisms_are_timms_own_classes():
    expected = {"se": SEModule, "eca": EcaModule, "cbam": CbamModule, "gc": GlobalContext, "nonlocal": NonLocalAttn}
    for name, cls in expected.items():
        assert type(create_attention(name, 32)) is cls
        assert MECHANISMS[name].source == "timm"
    for name in ("bam", "mhsa", "local", "aa"):
        assert MECHANISMS[name].source == "medattn"


@pytest.mark.parametrize("name", GATING)
def test_gating_and_context_modules_keep_the_shape(name):
    x = torch.randn(2, 32, 9, 7)
    assert create_attention(name, 32)(x).shape == x.shape


@pytest.mark.parametrize("name", REPLACING)
@pytest.mark.parametrize("stride", [1, 2])
def test_conv_replacing_modules_follow_out_channels_and_stride(name, stride):
    x = torch.randn(2, 32, 9, 9)
    module = create_attention(name, 32, **context(name, out=64, stride=stride))
    assert module(x).shape == (2, 64, 5 if stride == 2 else 9, 5 if stride == 2 else 9)  # ceil like a 3x3 conv


def test_options_reach_the_module():
    assert create_attention("se", 64, rd_ratio=0.5).fc1.out_channels == 32
    assert create_attention("mhsa", 32, heads=2, **context("mhsa")).heads == 2
    assert create_attention("local", 32, window_size=5, **context("local")).radius == 2
    assert create_attention("bam", 64, reduction=4).channel_mlp[0].out_features == 16


def test_none_builds_nothing_and_takes_no_options():
    assert create_attention("none", 32) is None
    with pytest.raises(ModelError, match="takes no options"):
        create_attention("none", 32, heads=2)


def test_alias_nl_is_the_non_local_block():
    assert get_mechanism("nl").name == "nonlocal"


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: create_attention("transformer", 32), "unknown attention 'transformer'; use one of none, se"),
        (lambda: create_attention("se", 32, reduction=4), "unknown option 'reduction' for attention 'se'; valid"),
        (lambda: create_attention("mhsa", 32, feat_size=(4, 4), stride=1, out_channels=32, heads=3),
         "heads=3 must divide the 32 output channels"),
        (lambda: create_attention("mhsa", 32, out_channels=32), "mhsa needs feat_size"),
        (lambda: create_attention("mhsa", 32, position="sine", **context("mhsa")), "position='sine' is not valid"),
        (lambda: create_attention("local", 32, window_size=4, **context("local")), "window_size=4 must be an odd"),
        (lambda: create_attention("local", 32, mode="full", **context("local")), "mode='full' is not valid"),
        (lambda: create_attention("local", 32, out_channels=32, stride=3), "stride=3 is not supported"),
        (lambda: create_attention("aa", 32, out_channels=32, feat_size=(4, 4), groups=2), "not groups=2"),
        (lambda: create_attention("aa", 32, value_ratio=1.0, **context("aa")), "leaves no convolution channels"),
    ],
)
def test_bad_names_and_options_raise_model_errors_naming_the_fix(call, message):
    with pytest.raises(ModelError, match=message.replace("(", r"\(").replace(")", r"\)")):
        call()


def test_error_messages_are_one_line():
    with pytest.raises(ModelError) as err:
        create_attention("se", 32, bogus=1)
    assert "\n" not in str(err.value) and "rd_ratio" in str(err.value)
