"""Precision resolution, CPU bf16 detection, the channels_last rule and the stem policy's resolution."""

from __future__ import annotations

import pytest
import torch

from medattn.errors import ModelError, SpecError
from medattn.models.stem import default_stem, resolve_stem
from medattn.runtime import precision as prec
from medattn.runtime.memory_format import use_channels_last
from medattn.runtime.precision import Precision, resolve_precision
from medattn.train.config import ModelConfig

CPU = torch.device("cpu")


def test_cpuinfo_flags_are_parsed_from_the_flags_line(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: X\nflags\t\t: fpu sse avx512f amx_tile amx_bf16 avx512_bf16\n")
    assert {"amx_bf16", "avx512_bf16", "fpu"} <= prec._cpuinfo_flags(info)
    assert prec._cpuinfo_flags(tmp_path / "missing") == set()


def test_detection_agrees_with_torchs_own_cpu_probe():
    """Independent truth: torch's dispatcher probes the CPU with cpuid; /proc/cpuinfo must say the same."""
    probe = torch.cpu
    flags = prec._cpuinfo_flags()
    if not flags:
        pytest.fail("no /proc/cpuinfo flags line on this machine; the test needs Linux")
    assert ("avx512_bf16" in flags) == probe._is_avx512_bf16_supported()
    assert ("amx_bf16" in flags) == probe._is_amx_tile_supported()


@pytest.mark.parametrize(("features", "expected"), [(("amx_bf16",), "bf16"), (("avx512_bf16",), "bf16"),
                                                    ((), "fp32")])
def test_auto_uses_bf16_exactly_on_cpus_with_bf16_matrix_hardware(monkeypatch, features, expected):
    monkeypatch.setattr(prec, "cpu_bf16_features", lambda: features)
    chosen = resolve_precision("auto", CPU)
    assert chosen.name == expected and chosen.reason.startswith("auto: CPU")


def test_explicit_choices_and_errors(monkeypatch):
    monkeypatch.setattr(prec, "cpu_bf16_features", lambda: ())
    assert resolve_precision("bf16", CPU).name == "bf16"  # honoured even where it is slow
    assert resolve_precision("fp32", CPU).name == "fp32"
    with pytest.raises(SpecError, match="fp16 needs a CUDA device; use bf16"):
        resolve_precision("fp16", CPU)
    with pytest.raises(SpecError, match="'half' is not valid; use one of auto, fp32, bf16, fp16"):
        resolve_precision("half", CPU)


def test_auto_falls_back_to_fp32_for_a_listed_mechanism_with_the_reason(monkeypatch):
    monkeypatch.setattr(prec, "cpu_bf16_features", lambda: ("amx_bf16",))
    monkeypatch.setitem(prec.BF16_FALLBACK, "local", "0.7x fp32 speed in bf16")
    chosen = resolve_precision("auto", CPU, ("resnet18", "local"))
    assert chosen.name == "fp32" and "falls back for local (0.7x fp32 speed in bf16)" in chosen.reason
    assert resolve_precision("auto", CPU, ("resnet18", "se")).name == "bf16"
    assert resolve_precision("bf16", CPU, ("resnet18", "local")).name == "bf16"


def test_autocast_changes_the_compute_dtype_only_for_low_precision():
    layer = torch.nn.Linear(4, 4)
    x = torch.randn(2, 4)
    with Precision("bf16", "cpu", "t").autocast():
        assert layer(x).dtype == torch.bfloat16
    with Precision("fp32", "cpu", "t").autocast():
        assert layer(x).dtype == torch.float32
    assert Precision("bf16", "cpu", "t").grad_scaler() is None
    assert layer.weight.dtype == torch.float32  # weights stay fp32


def test_channels_last_rule():
    assert use_channels_last("auto", CPU, 28) and use_channels_last("auto", CPU, 224)
    assert not use_channels_last("auto", torch.device("meta"), 64)
    assert use_channels_last("auto", torch.device("cuda"), 28)
    assert use_channels_last(True, CPU, 28) and not use_channels_last(False, CPU, 224)


def test_stem_policy_and_overrides():
    assert default_stem(28) == resolve_stem(28) and default_stem(224) == "standard"
    assert resolve_stem(28, small_stem=True) == "s1" and resolve_stem(28, small_stem=False) == "standard"
    assert resolve_stem(224, stem="s2") == "s2"
    with pytest.raises(ModelError, match="give only one"):
        resolve_stem(28, small_stem=True, stem="s2")
    with pytest.raises(ValueError, match="small_stem and stem both choose the stem"):
        ModelConfig(small_stem=True, stem="s1")
