"""Provenance: the version and commit medattn records, checked against git and the libraries themselves."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy
import pytest
import torch
from packaging.version import Version

from medattn import provenance as prov

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _fresh_source_cache():
    prov.source.cache_clear()
    yield
    prov.source.cache_clear()


@pytest.mark.parametrize("version, commit", [
    ("0.1.1.dev151+gafe30d3bf.d20261205", "afe30d3bf"),  # setuptools-scm, dirty tree
    ("0.1.1.dev3+g1234abc", "1234abc"),
    ("2.0.0", None),  # a tagged release: no local part
    ("0.1.0", None),  # the fallback of a source archive
    (None, None),  # not installed
])
def test_commit_from_version(version, commit):
    assert prov.commit_from_version(version) == commit


def test_commit_is_read_from_this_checkout():
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True)
    src = prov.source()
    assert src["commit"] == head.stdout.strip()
    assert src["commit_from"] == "git"
    assert isinstance(src["dirty"], bool)
    assert Version(src["version"])  # a PEP 440 version from setuptools-scm


def test_outside_a_git_checkout_the_commit_comes_from_the_version(tmp_path, monkeypatch):
    monkeypatch.setattr(prov, "PACKAGE_DIR", tmp_path)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    monkeypatch.setattr(prov, "package_version", lambda name: "0.1.1.dev7+gdeadbee")
    assert prov.source() == {"version": "0.1.1.dev7+gdeadbee", "commit": "deadbee", "dirty": None,
                             "commit_from": "version"}


def test_a_foreign_git_repository_is_not_taken_for_medattn(tmp_path, monkeypatch):
    """A venv inside some other repository must not record that repository's commit."""
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    package = tmp_path / "lib" / "medattn"
    package.mkdir(parents=True)
    monkeypatch.setattr(prov, "PACKAGE_DIR", package)
    monkeypatch.setattr(prov, "package_version", lambda name: "0.1.0")
    assert prov.source()["commit"] is None
    assert prov.source()["commit_from"] is None


def test_library_versions_are_the_imported_ones():
    libs = prov.libraries()
    assert Version(libs["torch"]).public == Version(torch.__version__).public  # metadata drops torch's +cu130 tag
    assert libs["numpy"] == numpy.__version__
    assert libs["python"] == "{}.{}.{}".format(*os.sys.version_info[:3])
    assert set(libs) == {"python", "torch", "timm", "optuna", "numpy"}


def test_record_is_json_with_hardware():
    record = json.loads(json.dumps(prov.provenance()))
    assert set(record) == {"medattn", "libraries", "hardware"}
    assert record["hardware"]["cores"] == os.cpu_count()
    assert len(record["hardware"]["cuda"]) == (torch.cuda.device_count() if torch.cuda.is_available() else 0)
    assert record["hardware"]["torch_cuda"] == torch.version.cuda
    assert "hardware" not in prov.provenance(with_hardware=False)
