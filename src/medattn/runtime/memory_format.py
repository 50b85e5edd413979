"""Memory format rule: when a run keeps activations and weights channels_last (NHWC) instead of NCHW.

oneDNN (CPU) and cuDNN (CUDA) convolutions work natively in NHWC. Measured with bench/train_throughput.py on
this project's 2-core AMX CPU, idle, fp32 / bf16 interleaved in one run (docs/performance.md),
ResNet-18 training with channels_last vs without: fp32 1.10x / 1.08x / 1.08x at 28 / 64 / 224 px, bf16 1.12x /
1.15x / 1.35x. An earlier measurement (issue 10's table) saw channels_last lose 12 % at 28 px in bf16; the idle
same-run measurement did not reproduce it. Rule: always on CPU and CUDA.
"""

from __future__ import annotations

import torch

NHWC_DEVICES = ("cpu", "cuda")  # device types whose convolution libraries are NHWC-native


def use_channels_last(setting: bool | str, device: torch.device, image_size: int) -> bool:
    """Whether a run on `device` at `image_size` px uses channels_last (`setting`: True, False or 'auto')."""
    if setting != "auto":
        return bool(setting)
    return device.type in NHWC_DEVICES
