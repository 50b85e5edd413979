"""Single-threaded torch for these tests: tiny batches gain nothing from threads, and on shared cores
OpenMP threads waiting on each other make them several times slower. The previous setting is restored."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
