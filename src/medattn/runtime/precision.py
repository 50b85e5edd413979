"""Numeric precision of a run: `auto | fp32 | bf16 | fp16`, resolved against the hardware that runs it.

Mixed precision follows PyTorch's autocast (Micikevicius et al., "Mixed Precision Training", ICLR 2018; bf16 as
in Kalamkar et al., "A Study of BFLOAT16 for Deep Learning Training", 2019): weights, optimizer state, the loss,
softmax outputs, metrics and saved predictions stay fp32; autocast runs convolutions and matrix products in the
low-precision type. Departures: fp16 needs CUDA (it is slow on CPUs and needs loss scaling, which
`torch.amp.GradScaler` provides on CUDA); `auto` picks bf16 on a CPU only when the CPU has bf16 matrix hardware
(AMX-BF16 or AVX512-BF16), detected from the CPU's feature flags, never assumed from its model name.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch

from medattn.errors import SpecError

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")  # /proc/cpuinfo names of the bf16 matrix instructions

# Backbones and mechanisms measured slower or unstable under bf16 autocast: name -> measured reason. `auto`
# falls back to fp32 for them with a notice; an explicit `bf16` is honoured. Filled from
# bench/train_throughput.py (bf16 vs fp32 in the same run, see docs/performance.md).
BF16_FALLBACK: dict[str, str] = {}


@dataclass(frozen=True)
class Precision:
    """A resolved precision: the autocast dtype on one device type, and why it was chosen."""

    name: str  # fp32 | bf16 | fp16
    device_type: str  # cpu | cuda | ...
    reason: str

    @property
    def dtype(self) -> torch.dtype:
        """The autocast compute dtype (float32 means no autocast)."""
        return DTYPES[self.name]

    def autocast(self) -> contextlib.AbstractContextManager:
        """The autocast context for this precision (a no-op for fp32)."""
        if self.name == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def grad_scaler(self) -> torch.amp.GradScaler | None:
        """A loss scaler for fp16 (its gradients underflow without one); None otherwise."""
        return torch.amp.GradScaler(self.device_type) if self.name == "fp16" else None


def _cpuinfo_flags(path: Path = Path("/proc/cpuinfo")) -> set[str]:
    """The CPU feature flags Linux reports (empty when the file is unreadable, e.g. not Linux)."""
    try:
        text = path.read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def _torch_cpu_bf16() -> list[str]:
    """The bf16 matrix features torch's CPU dispatcher itself detects (cpuinfo-independent)."""
    found = []
    probes = (("amx_bf16", "_is_amx_tile_supported"), ("avx512_bf16", "_is_avx512_bf16_supported"))
    for flag, probe in probes:
        check = getattr(torch.cpu, probe, None)  # cpuid-based probes of torch's CPU dispatcher
        if check is not None and check():
            found.append(flag)
    return found


@lru_cache(maxsize=1)
def cpu_bf16_features() -> tuple[str, ...]:
    """The fast-bf16 CPU features present (`amx_bf16`, `avx512_bf16`), from /proc/cpuinfo or torch's own probe."""
    flags = _cpuinfo_flags()
    found = [f for f in BF16_CPU_FLAGS if f in flags] or _torch_cpu_bf16()
    return tuple(found)


def _cuda_bf16(device: torch.device) -> bool:
    return torch.cuda.is_available() and torch.cuda.is_bf16_supported()


def resolve_precision(requested: str, device: torch.device, models: tuple[str, ...] = ()) -> Precision:
    """The precision a run uses on `device`; `models` are backbone/mechanism names checked against BF16_FALLBACK."""
    if requested not in PRECISIONS:
        raise SpecError(f"train.precision: '{requested}' is not valid; use one of {', '.join(PRECISIONS)}")
    kind = device.type
    if requested == "fp16" and kind != "cuda":
        raise SpecError("train.precision: fp16 needs a CUDA device; use bf16 (or auto) on a CPU")
    if requested in ("fp32", "fp16"):
        return Precision(requested, kind, "requested")
    if requested == "bf16":
        if kind == "cuda" and not _cuda_bf16(device):
            raise SpecError("train.precision: this CUDA device has no bf16; use fp16 or auto")
        return Precision("bf16", kind, "requested")
    return _auto(device, models)


def _auto(device: torch.device, models: tuple[str, ...]) -> Precision:
    kind = device.type
    slow = [m for m in models if m in BF16_FALLBACK]
    if kind == "cuda":
        fast = _cuda_bf16(device)
        why = "CUDA device with bf16" if fast else "CUDA device without bf16"
    elif kind == "cpu":
        features = cpu_bf16_features()
        fast = bool(features)
        why = f"CPU has {', '.join(features)}" if fast else "CPU lacks AMX-BF16 and AVX512-BF16"
    else:
        fast, why = False, f"no bf16 policy for device type '{kind}'"
    if fast and slow:
        return Precision("fp32", kind, f"auto: {why}, but bf16 falls back for {', '.join(slow)} "
                                       f"({'; '.join(BF16_FALLBACK[m] for m in slow)})")
    return Precision("bf16" if fast else "fp32", kind, f"auto: {why}")
