"""Shared fixtures: the location of the real data in ../shared/data (tests fail, never skip, without it)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    """The shared real-data folder (MEDATTN_SHARED_DATA or <repo>/../shared/data); fails the test if absent."""
    path = Path(os.environ.get("MEDATTN_SHARED_DATA") or REPO.parent / "shared" / "data")
    if not (path / "medmnist" / "pneumoniamnist.npz").is_file():
        pytest.fail(f"real data not found at {path}: set MEDATTN_SHARED_DATA to the shared data folder "
                    f"(see shared/data/README.md)")
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path of the shared real-data folder."""
    return shared_data_dir()


def _threads_per_test_worker() -> None:
    """Under pytest-xdist (`make test`: one worker per core), give each worker its share of the cores, so the
    workers' OpenMP pools do not oversubscribe the machine; commands the tests start inherit it."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        import torch

        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        threads = max(1, cores // workers)
        torch.set_num_threads(threads)
        os.environ.setdefault("OMP_NUM_THREADS", str(threads))


_threads_per_test_worker()

# tiny model batches: OpenMP threads only wait on each other (on a loaded machine 2 threads cost ~10x the CPU of 1)
SINGLE_THREAD_DIRS = {"attention", "models", "explain", "segment"}


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread_for_model_tests(request):
    """Run the attention/model tests with one torch thread; restore the previous setting afterwards."""
    import torch

    if Path(request.module.__file__).parent.name not in SINGLE_THREAD_DIRS:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _torch_seeded_per_test():
    """Every test starts from the same torch random state, whatever ran before it on its worker (pytest-randomly
    reseeds only `random` and numpy): unseeded inputs do not make a test depend on the order of tests."""
    import torch

    torch.manual_seed(0)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Files with slow tests first (stable order otherwise): under `make test` (`--dist loadfile
    --no-loadscope-reorder`) the workers take files in this order, so no long file starts last and runs alone."""
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow_files)
