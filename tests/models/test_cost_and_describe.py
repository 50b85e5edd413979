"""Cost (params, FLOPs, throughput, peak memory), the mechanism listing, and the benchmark script."""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from medattn.attention import MECHANISMS, create_attention
from medattn.models import BACKBONES, build_model
from medattn.models.cost import StoragePeak, cost_table, forward_flops, measure_cost, peak_step_memory_mb
from medattn.models.describe import combinations, list_backbones, list_mechanisms
from medattn.models.stem import default_stem
from medattn.runtime.precision import resolve_precision

BENCH = Path(__file__).resolve().parents[2] / "bench" / "attention.py"
MiB = 2**20


def test_list_mechanisms_describes_every_registered_mechanism():
    rows = list_mechanisms()
    assert [r["name"] for r in rows] == list(MECHANISMS)
    for r in rows:
        assert {"name", "family", "paper", "placements", "default_placement", "options"} <= set(r)
    by_name = {r["name"]: r for r in rows}
    assert by_name["bam"]["placements"] == ["stage_end"]
    assert by_name["mhsa"]["default_placement"] == {"stages": "last", "where": "replace_3x3", "blocks": "all"}
    assert by_name["local"]["options"]["window_size"] == 7
    json.dumps(rows)  # plain data the CLI can print


def test_combinations_cover_every_cnn_with_every_mechanism_and_transformers_plain():
    combos = combinations()
    cnns = [b["name"] for b in list_backbones() if b["kind"] == "cnn"]
    assert len(combos) == len(cnns) * len(MECHANISMS) + 2
    assert ("vit_tiny", "none") in combos and ("swin_tiny", "se") not in combos


def test_storage_peak_counts_live_bytes_and_frees():
    tracker = StoragePeak()
    with tracker:
        a = torch.empty(MiB, dtype=torch.uint8)
        b = torch.empty(2 * MiB, dtype=torch.uint8)
        del a
        c = torch.empty(4 * MiB, dtype=torch.uint8)
        view = c[: MiB]  # a view allocates nothing
        del b, c, view
    assert tracker.peak == 6 * MiB and tracker.live == 0


def test_peak_memory_grows_with_activations_on_cpu():
    layer = torch.nn.Conv2d(8, 8, 3, padding=1)

    def step(n):
        return lambda: layer(torch.randn(n, 8, 32, 32)).sum().backward()

    small, large = peak_step_memory_mb(step(2), torch.device("cpu")), peak_step_memory_mb(step(8), torch.device("cpu"))
    assert small > 2 * 8 * 32 * 32 * 4 / MiB  # at least the output activation
    assert 3 < large / small < 5


def test_meta_flop_count_matches_a_real_count_and_includes_attention():
    model = build_model("resnet18", "mhsa", image_size=28).eval()
    counter = FlopCounterMode(display=False)
    with counter, torch.nn.attention.sdpa_kernel([torch.nn.attention.SDPBackend.MATH]), torch.no_grad():
        model(torch.randn(1, 3, 28, 28))
    assert forward_flops("resnet18", "mhsa", 28) == counter.get_total_flops()
    module = create_attention("mhsa", 64, out_channels=64, stride=1, feat_size=(8, 8))
    with FlopCounterMode(display=False) as attn_counter, torch.no_grad(), \
            torch.nn.attention.sdpa_kernel([torch.nn.attention.SDPBackend.MATH]):
        module(torch.randn(1, 64, 8, 8))
    qk_and_av = 2 * 2 * 64 * 64 * 64  # two (64 x 64) x 64-wide matmuls over all 4 heads of 16 dims
    assert attn_counter.get_total_flops() >= qk_and_av + 2 * 64 * 192 * 64  # plus the qkv projection


def test_known_flop_counts():
    assert abs(forward_flops("resnet18", "none", 224) / 1e9 - 3.64) < 0.02  # 1.82 GMACs
    assert abs(forward_flops("vit_tiny", "none", 224) / 1e9 - 2.51) < 0.03


def test_measure_cost_reports_every_field():
    row = measure_cost("resnet18", "cbam", image_size=28, batch_size=2, warmup=0, repeats=1,
                       placement={"stages": [4]})
    model = build_model("resnet18", "cbam", image_size=28, placement={"stages": [4]})
    assert row["params"] == sum(p.numel() for p in model.parameters())
    assert row["placement"] == {"stages": [4], "where": "after_conv", "blocks": "all"}
    assert row["flops"] > 0 and row["train_images_per_s"] > 0 and row["infer_images_per_s"] > 0
    assert row["peak_memory_mb"] > 0 and row["device"] == "cpu"
    assert row["stem"] == default_stem(28) and row["channels_last"] is True
    assert row["precision"] == resolve_precision("auto", torch.device("cpu")).name
    pinned = measure_cost("resnet18", image_size=28, batch_size=2, warmup=0, repeats=1, precision="fp32",
                          small_stem=True)
    assert pinned["precision"] == "fp32" and pinned["stem"] == "s1"


def test_cost_table_has_a_row_per_combination_and_ratios_to_the_plain_backbone():
    table = cost_table(image_size=28, backbones=["efficientnet_b0"], attentions=["none", "se", "local"],
                       batch_size=2, warmup=0, repeats=1)
    assert list(table["attention"]) == ["none", "se", "local"]
    plain = table.iloc[0]
    assert plain["params_vs_none"] == plain["flops_vs_none"] == plain["train_time_vs_none"] == 1.0
    assert table.iloc[1]["params"] > plain["params"]


def test_bench_script_runs_quickly_and_writes_json(tmp_path, monkeypatch):
    out = tmp_path / "attention.json"
    monkeypatch.setattr(sys, "argv", ["attention.py", "--batch", "1", "--channels", "32", "--sizes", "7",
                                      "--repeats", "1", "--warmup", "0", "--mechanisms", "se", "mhsa", "local",
                                      "--out", str(out)])
    runpy.run_path(str(BENCH), run_name="__main__")
    results = json.loads(out.read_text())
    assert [r["mechanism"] for r in results["blocks"]] == ["none", "se", "mhsa", "local"]
    assert {r["reference"] for r in results["vs_timm"]} == {"SEModule", "BottleneckAttn", "HaloAttn"}
    assert all(r["max_abs_diff"] < 1e-4 for r in results["vs_timm"] + results["vs_naive"])


def hand_counted_flops(model: torch.nn.Module, x: torch.Tensor) -> int:
    """2 x multiply-adds of every convolution, linear layer and attention product, from the layers' shapes."""
    from timm.models.swin_transformer import WindowAttention
    from timm.models.vision_transformer import Attention

    total = 0

    def conv(m, inputs, out):  # each output element: Cin/groups x kh x kw multiply-adds
        nonlocal total
        total += 2 * out.numel() * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]

    def linear(m, inputs, out):
        nonlocal total
        total += 2 * out.numel() * m.in_features

    def attention(m, inputs, out):  # q k^T and (attention) v over all heads: 2 x (N x N x C) multiply-adds
        nonlocal total
        tokens = inputs[0]
        total += 2 * 2 * tokens.shape[0] * tokens.shape[-2] ** 2 * tokens.shape[-1]

    kinds = {torch.nn.Conv2d: conv, torch.nn.Linear: linear, Attention: attention, WindowAttention: attention}
    handles = [m.register_forward_hook(hook) for m in model.modules() for kind, hook in kinds.items()
               if isinstance(m, kind)]
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    return total


@pytest.mark.parametrize("backbone", list(BACKBONES))
def test_every_backbone_cost_equals_a_hand_count_of_its_layers(backbone):
    model = build_model(backbone, "none", image_size=32).eval()
    assert forward_flops(backbone, "none", 32) == hand_counted_flops(model, torch.randn(1, 3, 32, 32))


def test_cost_follows_the_stem_that_is_trained():
    from medattn.models.cost import forward_flops

    small = forward_flops("resnet18", "none", 32, 3, 2, None, True)
    standard = forward_flops("resnet18", "none", 32, 3, 2, None, False)
    assert standard * 14 < small  # stride-4 stem: 16x fewer positions in every stage
