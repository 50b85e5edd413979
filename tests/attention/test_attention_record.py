"""Recording attention maps: right kinds and shapes, gates in [0, 1], rows stochastic, outputs unchanged, free off."""

from __future__ import annotations

import pytest
import torch

from medattn.attention import MECHANISMS, record_attention
from medattn.attention.record import AttentionMap, _lookup
from medattn.models import BACKBONES, build_model
from medattn.models.describe import combinations

SIZE = 28
WITH_MAPS = [n for n in MECHANISMS if n != "none"]


def model_and_input(backbone: str, attention: str, batch: int = 2, **options):
    """An eval-mode model at 28 px and a fixed input; CNNs get the stride-1 stem, whose 4 x 4 last stage the
    geometry checks below rely on."""
    if BACKBONES[backbone].kind == "cnn":
        options.setdefault("stem", "s1")
    torch.manual_seed(0)
    model = build_model(backbone, attention, image_size=SIZE, **options).eval()
    return model, torch.randn(batch, 3, SIZE, SIZE)


def hooks_everywhere(model: torch.nn.Module) -> int:
    """Number of forward (pre-)hooks on all submodules."""
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


@pytest.mark.parametrize("attention", WITH_MAPS)
def test_recording_yields_valid_maps_and_changes_no_output(attention):
    model, x = model_and_input("resnet18", attention)
    with torch.no_grad():
        plain = model(x)
        with record_attention(model) as maps:
            recorded = model(x)
    assert torch.equal(plain, recorded)
    assert maps and all(m.mechanism == attention for m in maps)
    for m in maps:
        check_map(m, batch=2)


def check_map(m: AttentionMap, batch: int) -> None:
    """Shape, range and geometry checks per kind."""
    assert m.image_size == (SIZE, SIZE)
    assert m.values.shape[0] == batch and torch.isfinite(m.values).all()
    if m.kind == "channel":
        assert m.values.dim() == 2
        assert m.values.min() >= 0 and m.values.max() <= 1
        return
    if m.kind == "spatial":
        assert m.values.shape[1:] == m.grid
        assert m.values.min() >= 0 and m.values.max() <= 1
    else:
        queries, keys = m.values.shape[-2:]
        assert queries == m.query_grid[0] * m.query_grid[1] + m.prefix_tokens
        assert keys == m.grid[0] * m.grid[1] + m.prefix_tokens
        assert m.values.min() >= 0
        assert torch.allclose(m.values.sum(-1), torch.ones(()), atol=1e-5)
    assert m.to_image().shape == (batch, SIZE, SIZE)


def test_expected_kinds_per_mechanism():
    kinds = {}
    for attention in WITH_MAPS:
        model, x = model_and_input("resnet18", attention)
        with torch.no_grad(), record_attention(model) as maps:
            model(x)
        kinds[attention] = sorted({(m.kind, m.part) for m in maps})
    assert kinds["se"] == kinds["eca"] == [("channel", "")]
    assert kinds["cbam"] == kinds["bam"] == [("channel", "channel"), ("spatial", "spatial")]
    assert kinds["gc"] == [("channel", "channel"), ("spatial", "context")]
    assert kinds["nonlocal"] == kinds["mhsa"] == kinds["local"] == kinds["aa"] == [("self", "")]


def test_one_map_per_module_per_forward_with_module_paths():
    model, x = model_and_input("resnet18", "mhsa")
    with torch.no_grad(), record_attention(model) as maps:
        model(x)
    assert [m.module for m in maps] == ["layer4.0.conv2", "layer4.1.conv2"]
    assert maps[0].values.shape == (2, 4, 16, 16) and maps[0].grid == (4, 4)


def test_local_maps_are_zero_outside_each_pixels_window():
    model, x = model_and_input("resnet18", "local", window_size=3)  # 3x3 windows on the 4x4 map of stage 4
    with torch.no_grad(), record_attention(model) as maps:
        model(x)
    att = maps[0].values[0, 0].view(4, 4, 4, 4)  # query y, x, key y, x
    ys = torch.arange(4)
    near = ((ys[:, None, None, None] - ys[None, None, :, None]).abs() <= 1) & \
           ((ys[None, :, None, None] - ys[None, None, None, :]).abs() <= 1)
    assert (att[~near] == 0).all() and (att[near] > 0).all()


def test_nothing_is_left_behind_and_nothing_recorded_outside_the_block():
    model, x = model_and_input("resnet18", "cbam")
    assert hooks_everywhere(model) == 0
    with record_attention(model) as maps:
        assert hooks_everywhere(model) > 0
        with torch.no_grad():
            model(x)
    count = len(maps)
    assert hooks_everywhere(model) == 0
    with torch.no_grad():
        model(x)
    assert len(maps) == count


def test_our_modules_report_only_while_recording():
    model, x = model_and_input("resnet18", "aa")
    sinks = [m for m in model.modules() if hasattr(m, "attention_sink")]
    assert sinks and all(m.attention_sink is None for m in sinks)
    with record_attention(model):
        assert all(m.attention_sink is not None for m in sinks)
    assert all(m.attention_sink is None for m in sinks)


def test_hooks_are_removed_when_the_forward_pass_fails():
    model, _ = model_and_input("resnet18", "se")
    with pytest.raises(RuntimeError), record_attention(model):
        model(torch.randn(2, 5, SIZE, SIZE))  # wrong channel count
    assert hooks_everywhere(model) == 0


def test_maps_can_keep_their_graph_for_gradient_based_explanations():
    model, x = model_and_input("resnet18", "bam")
    model.train()
    with record_attention(model, detach=False) as maps:
        model(x)
    maps[0].values.sum().backward()
    assert model.layer1[-1].channel_mlp[0].weight.grad is not None


def test_vit_baseline_maps_include_the_class_token():
    model, x = model_and_input("vit_tiny", "none")
    with torch.no_grad():
        plain = model(x)
        with record_attention(model) as maps:
            assert torch.equal(model(x), plain)
    assert len(maps) == 12
    assert maps[0].values.shape == (2, 3, 197, 197) and maps[0].prefix_tokens == 1 and maps[0].grid == (14, 14)
    for m in maps:
        check_map(m, batch=2)


def test_swin_maps_equal_the_attention_timm_computes_per_window():
    """Each Swin block's map is the attention each position receives (mean over heads and the queries of its
    window), computed from timm's own non-fused softmax output, unshifted back onto the feature grid."""
    from timm.models.swin_transformer import SwinTransformerBlock, window_reverse

    torch.manual_seed(0)
    model = build_model("swin_tiny", "none", image_size=64).eval()
    x = torch.randn(2, 3, 64, 64)
    truth = []
    for block in (m for m in model.modules() if isinstance(m, SwinTransformerBlock)):
        block.attn.fused_attn = False
        block.attn.softmax.register_forward_hook(lambda _m, _a, out, b=block: truth.append((b, out)))
        block.register_forward_pre_hook(lambda b, args: setattr(b, "_grid", args[0].shape[1:3]))
    with torch.no_grad():
        plain = model(x)
        truth.clear()
        with record_attention(model) as maps:
            assert torch.equal(model(x), plain)
    assert len(maps) == len(truth) == 12 and all(m.mechanism == "swin" and m.kind == "spatial" for m in maps)
    shifted = 0
    for m, (block, attn) in zip(maps, truth, strict=True):
        (h, w), (wh, ww) = block._grid, block.window_size
        grid = window_reverse(attn.mean(dim=(1, 2)).view(-1, wh, ww, 1), (wh, ww), h, w)[..., 0]
        if any(block.shift_size):
            grid, shifted = torch.roll(grid, shifts=tuple(block.shift_size), dims=(1, 2)), shifted + 1
        assert m.values.shape == (2, h, w) and m.grid == (h, w)
        torch.testing.assert_close(m.values, grid, atol=1e-5, rtol=1e-4)
        assert m.to_image().shape == (2, 64, 64)
    assert shifted > 0, "the shifted-window blocks were checked"


def test_channel_maps_have_no_image_layout():
    model, x = model_and_input("resnet18", "se")
    with torch.no_grad(), record_attention(model) as maps:
        model(x)
    with pytest.raises(ValueError, match="channel gate has no spatial layout"):
        maps[0].to_image()


def _placements(attention: str) -> list[dict | None]:
    """The mechanism's default placement and every other place it can go (last stage, to stay cheap)."""
    m = MECHANISMS[attention]
    return [None] + [{"where": w, "stages": "last", "blocks": "all"} for w in m.placements
                     if w != m.default_placement["where"]]


CNN_COMBOS = [(b, a) for b, a in combinations() if a != "none"]


@pytest.mark.parametrize(("backbone", "attention"), CNN_COMBOS)
def test_every_backbone_and_placement_records_one_map_per_attention_module(backbone, attention):
    for placement in _placements(attention):
        torch.manual_seed(0)
        model = build_model(backbone, attention, image_size=SIZE, placement=placement).eval()
        x = torch.randn(1, 3, SIZE, SIZE)
        expected = {name for name, module in model.named_modules() if _lookup(module) is not None}
        assert expected, f"{backbone}+{attention} at {placement}: no attention module to record"
        with torch.no_grad():
            plain = model(x)
            with record_attention(model) as maps:
                recorded = model(x)
        assert torch.equal(plain, recorded), placement
        assert {m.module for m in maps} == expected, placement
        assert all(m.mechanism == attention for m in maps)
        for m in maps:
            check_map(m, batch=1)
