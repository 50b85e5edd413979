"""Fixtures for explanation tests: one torch thread, a tiny trained study shared by the module tests."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from explain_helpers import make_study  # noqa: E402


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny models: OpenMP threads only wait on each other."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A study directory with plain, CBAM and SE ResNet-18 x 2 seeds trained for one epoch on derm-synth."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return make_study(tmp_path_factory.mktemp("study"))
    finally:
        torch.set_num_threads(before)
