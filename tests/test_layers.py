"""Imports point down the layers declared in pyproject.toml (``[tool.importlinter]``), checked by import-linter.

The layer order is CONTRIBUTING.md's architecture picture; an upward import (a lower layer importing a higher
one, directly or through another module, including imports inside functions) fails the first test, which prints
import-linter's report naming the importing module and line.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from importlinter.application.use_cases import lint_imports
from importlinter.configuration import configure

import medattn

configure()  # import-linter's config readers and graph builder, as its CLI sets them up

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
LINT = ("import sys; from importlinter.configuration import configure; configure(); "
        "from importlinter.application.use_cases import lint_imports; "
        "sys.exit(0 if lint_imports(sys.argv[1], cache_dir=None, no_logo=True) else 1)")


def test_imports_point_down_the_layers(capsys):
    kept = lint_imports(str(PYPROJECT), cache_dir=None, no_logo=True)
    assert kept, capsys.readouterr().out


def test_a_planted_upward_import_breaks_the_contract(tmp_path):
    source = tmp_path / "src" / "medattn"
    shutil.copytree(Path(medattn.__file__).parent, source,
                    ignore=shutil.ignore_patterns("__pycache__", "static", "templates"))
    with (source / "data" / "imageset.py").open("a") as f:
        f.write("\nfrom medattn.report.document import Table  # noqa: E402  planted: data imports report\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "src")}
    run = subprocess.run([sys.executable, "-c", LINT, str(PYPROJECT)], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "medattn.data is not allowed to import medattn.report" in run.stdout
    assert "medattn.data.imageset -> medattn.report.document" in run.stdout
