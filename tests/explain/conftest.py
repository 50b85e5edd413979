"""Fixtures for explanation tests: a tiny study of untrained checkpoints (one torch thread per module comes from
tests/conftest.py SINGLE_THREAD_DIRS)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers.rundir import checkpoint_run


@pytest.fixture(scope="session")
def tiny_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A study directory with plain, SE and CBAM ResNet-18 x 2 seeds (seeded random weights) on derm-synth."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return checkpoint_run(tmp_path_factory.mktemp("study"))
    finally:
        torch.set_num_threads(before)
