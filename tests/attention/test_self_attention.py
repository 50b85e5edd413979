"""mhsa / local / aa: equal to naive references and to timm's BottleneckAttn / HaloAttn with the same weights."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from timm.layers.bottleneck_attn import BottleneckAttn
from timm.layers.halo_attn import HaloAttn

from medattn.attention import create_attention
from medattn.attention.blocked import Axis, dense_map, sasa_axis
from medattn.attention.reference import naive_global, naive_local_loop, naive_local_unfold, naive_mhsa
from medattn.errors import ModelError

TOL = 1e-5


def mhsa(size=(6, 5), stride=1, channels=32, **kw):
    """An mhsa module replacing a 3x3 conv on a `size` map."""
    torch.manual_seed(0)
    return create_attention("mhsa", channels, out_channels=channels, stride=stride, feat_size=size, **kw)


def local(channels=32, stride=1, **kw):
    """A local self-attention module (4 heads unless told otherwise)."""
    torch.manual_seed(0)
    return create_attention("local", channels, out_channels=channels, stride=stride, **{"heads": 4, **kw})


@pytest.mark.parametrize("position", ["relative", "learned", "none"])
@pytest.mark.parametrize("scale_pos", [False, True])
@pytest.mark.parametrize("stride", [1, 2])
def test_mhsa_equals_naive_softmax_qk_v(position, scale_pos, stride):
    module = mhsa((7, 5), stride, position=position, scale_pos=scale_pos)
    x = torch.randn(2, 32, 7, 5)
    assert torch.allclose(module(x), naive_mhsa(module, x), atol=TOL, rtol=0)


def test_mhsa_relative_positions_matter():
    module = mhsa((6, 6))
    x = torch.randn(2, 32, 6, 6)
    before = module(x)
    with torch.no_grad():
        module.pos.rows.mul_(5.0)
    assert not torch.allclose(before, module(x), atol=1e-3)


def test_mhsa_accepts_smaller_maps_with_relative_positions_and_refuses_larger_ones():
    module = mhsa((8, 8))
    x = torch.randn(1, 32, 5, 6)
    assert torch.allclose(module(x), naive_mhsa(module, x), atol=TOL, rtol=0)
    with pytest.raises(ModelError, match="built for 8x8 feature maps but got 9x8"):
        module(torch.randn(1, 32, 9, 8))
    with pytest.raises(ModelError, match="built for 8x8"):
        mhsa((8, 8), position="learned")(torch.randn(1, 32, 6, 6))


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("scale_pos", [False, True])
def test_mhsa_equals_timm_bottleneck_attn_with_the_same_weights(stride, scale_pos):
    ours = mhsa((8, 8), stride, scale_pos=scale_pos)
    theirs = BottleneckAttn(32, feat_size=(8, 8), stride=stride, num_heads=4, scale_pos_embed=scale_pos)
    theirs.load_state_dict({"qkv.weight": ours.qkv.weight, "pos_embed.height_rel": ours.pos.rows,
                            "pos_embed.width_rel": ours.pos.cols})
    x = torch.randn(2, 32, 8, 8)
    assert torch.allclose(ours(x), theirs(x), atol=TOL, rtol=0)


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize(("block", "halo"), [(4, 2), (8, 3), (2, 1)])
def test_local_halo_mode_equals_timm_halo_attn_with_the_same_weights(stride, block, halo):
    ours = local(stride=stride, mode="halo", block_size=block, window_size=2 * halo + 1)
    theirs = HaloAttn(32, num_heads=4, block_size=block, halo_size=halo, stride=stride, avg_down=True)
    theirs.load_state_dict({"q.weight": ours.q.weight, "kv.weight": ours.kv.weight,
                            "pos_embed.height_rel": ours.rel_rows, "pos_embed.width_rel": ours.rel_cols})
    x = torch.randn(2, 32, 16, 8)
    assert torch.allclose(ours(x), theirs(x), atol=TOL, rtol=0)


@pytest.mark.parametrize("window", [3, 5])
@pytest.mark.parametrize("block", [2, 3, 4, 8])
def test_local_equals_a_naive_per_pixel_window_loop(window, block):
    module = local(window_size=window, block_size=block)
    x = torch.randn(2, 32, 7, 9)
    assert torch.allclose(module(x), naive_local_loop(module, x), atol=TOL, rtol=0)


@pytest.mark.parametrize("stride", [1, 2])
def test_local_equals_the_unfold_reference(stride):
    module = local(stride=stride, scale_pos=True)
    x = torch.randn(2, 32, 19, 12)  # 19 rows: padded last block; 12 columns: single block
    assert torch.allclose(module(x), naive_local_unfold(module, x), atol=TOL, rtol=0)


def test_local_output_does_not_depend_on_the_block_size():
    x = torch.randn(1, 32, 20, 20)
    outs = [local(block_size=b)(x) for b in (2, 4, 5, 8, 32)]
    for out in outs[1:]:
        assert torch.allclose(outs[0], out, atol=TOL, rtol=0)


def test_sasa_axis_picks_one_block_for_small_maps_and_divisors_otherwise():
    assert sasa_axis(14, 8, 3) == Axis(14, 14, 0)
    assert sasa_axis(28, 8, 3) == Axis(28, 7, 3)
    assert sasa_axis(56, 8, 3) == Axis(56, 8, 3)
    assert sasa_axis(37, 8, 3) == Axis(37, 8, 3)  # prime: padded to 40


def test_dense_map_puts_block_probabilities_on_the_grid():
    rows, cols = Axis(5, 2, 1), Axis(4, 4, 0)
    probs = torch.rand(1, 1, rows.nblocks * cols.nblocks, 2 * 4, 4 * 4)
    dense = dense_map(probs, rows, cols)
    # query (row 2, col 1) is in block-row 1 at offset 0; its window rows are 1..4, key (row 1, col 3) is slot 3
    assert dense[0, 0, 2 * 4 + 1, 1 * 4 + 3] == probs[0, 0, 1, 0 * 4 + 1, 0 * 4 + 3]
    assert dense[0, 0, 2 * 4 + 1, 0].item() == 0  # row 0 is outside that window


def aa_module(stride=1, groups=1, out=64, channels=32):
    """An attention-augmented conv replacing a 3x3 conv."""
    torch.manual_seed(0)
    return create_attention("aa", channels, out_channels=out, stride=stride, feat_size=(9, 9), kernel_size=3,
                            groups=groups, bias=False)


@pytest.mark.parametrize("stride", [1, 2])
def test_aa_is_a_convolution_concatenated_with_relative_self_attention(stride):
    module = aa_module(stride)
    x = torch.randn(2, 32, 9, 9)
    out = module(x)
    conv = F.conv2d(x, module.conv.weight, stride=stride, padding=1)
    pooled = F.avg_pool2d(x, stride, stride, ceil_mode=True) if stride > 1 else x
    q, k, v = module.qkv(pooled).split([module.dk, module.dk, module.dv], dim=1)
    attn, _ = naive_global(q, k, v, module.heads, module.pos, module.scale, scale_pos=True)
    expected = torch.cat([conv, module.proj(attn)], dim=1)
    assert out.shape == (2, 64, 5 if stride == 2 else 9, 5 if stride == 2 else 9)
    assert torch.allclose(out, expected, atol=TOL, rtol=0)


def test_aa_channel_split_follows_the_paper_ratios():
    module = aa_module(out=160)  # dk = 0.2 * 160 = 32, dv = 0.1 * 160 = 16 (multiples of 8 heads)
    assert (module.dk, module.dv, module.conv.out_channels) == (32, 16, 144)


def test_aa_replacing_a_depthwise_conv_stays_depthwise():
    module = aa_module(groups=64, out=64, channels=64)
    assert module.conv.groups == module.conv.in_channels == 64 - module.dv
    assert module(torch.randn(2, 64, 9, 9)).shape == (2, 64, 9, 9)


@pytest.mark.parametrize("name", ["mhsa", "local", "aa"])
def test_every_parameter_gets_a_gradient(name):
    module = {"mhsa": lambda: mhsa((8, 8)), "local": lambda: local(block_size=4), "aa": aa_module}[name]()
    x = torch.randn(2, 32, 8, 8, requires_grad=True)
    module(x).square().sum().backward()
    for pname, p in module.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, pname
    assert x.grad.abs().sum() > 0


@pytest.mark.parametrize("name", ["mhsa", "local", "aa"])
def test_bfloat16_autocast_runs_and_stays_close(name):
    module = {"mhsa": lambda: mhsa((8, 8)), "local": lambda: local(block_size=4), "aa": aa_module}[name]()
    x = torch.randn(2, 32, 8, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = module(x)
    assert low.dtype == torch.bfloat16
    assert torch.allclose(low.float(), module(x), atol=0.05, rtol=0.05)
