"""Fixtures for study tests (helpers live in study_helpers.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from study_helpers import FakeTrain, make_tiny_npz, postgres_server


@pytest.fixture(scope="session")
def tiny_npz(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Path:
    """Path of a tiny, class-balanced PneumoniaMNIST subset (160/64/64 images, 28 px)."""
    return make_tiny_npz(tmp_path_factory.mktemp("data") / "pneu-tiny.npz", shared_data)


@pytest.fixture
def fake_train() -> FakeTrain:
    """A fresh FakeTrain."""
    return FakeTrain()


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    """A throwaway PostgreSQL server (initdb + pg_ctl in a temp dir, free port); yields its SQLAlchemy URL."""
    with postgres_server() as url:
        yield url
