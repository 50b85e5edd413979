"""Memory format rule: when a run keeps activations and weights channels_last (NHWC) instead of NCHW.

oneDNN (CPU) and cuDNN (CUDA) convolutions work natively in NHWC; on a CPU the conversions around the layers
that are not NHWC-native (the attention modules' reshapes, pooling over a tiny map) cost more than they save on
tiny images. Measured on this project's 2-core AMX CPU (issue 10 and bench/train_throughput.py, README
"Precision and memory format"): ResNet-18 bf16 training lost 12 % with channels_last at 28 px and gained 16-65 %
at 64 and 224 px. Rule: always on CUDA; on a CPU from `CPU_CHANNELS_LAST_FROM` px up.
"""

from __future__ import annotations

import torch

CPU_CHANNELS_LAST_FROM = 64  # px: smallest image size where channels_last paid off on a CPU


def use_channels_last(setting: bool | str, device: torch.device, image_size: int) -> bool:
    """Whether a run on `device` at `image_size` px uses channels_last (`setting`: True, False or 'auto')."""
    if setting != "auto":
        return bool(setting)
    if device.type == "cuda":
        return True
    return device.type == "cpu" and image_size >= CPU_CHANNELS_LAST_FROM
