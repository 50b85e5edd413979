"""Segmentation tests train small U-Nets on tiny batches: one torch thread (a second one only waits on the first,
and on a loaded machine two threads cost about ten times the CPU time of one)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
