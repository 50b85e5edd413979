"""Library code logs (it does not print), and importing medattn leaves Optuna's log level alone (issue 21)."""

from __future__ import annotations

import ast
import logging
import subprocess
import sys
from pathlib import Path

import optuna

SRC = Path(__file__).resolve().parents[1] / "src" / "medattn"


def _prints(path: Path) -> list[int]:
    """Return the line numbers of calls to the builtin print in a module."""
    tree = ast.parse(path.read_text(), filename=str(path))
    return [node.lineno for node in ast.walk(tree)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print"]


def test_no_print_outside_command_line_modules():
    found = {str(p.relative_to(SRC)): lines for p in sorted(SRC.rglob("*.py"))
             if p.name != "cli.py" and (lines := _prints(p))}
    assert found == {}, f"use logging.getLogger(__name__) in library code, not print: {found}"


def test_the_print_check_finds_a_print(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("def f():\n    x = 1\n    print(x)\n")
    assert _prints(module) == [3]


def test_importing_the_study_engine_keeps_optunas_verbosity():
    code = ("import optuna; optuna.logging.set_verbosity(optuna.logging.DEBUG); "
            "import medattn.study.engine, medattn.study.worker, medattn.cli; "
            "print(optuna.logging.get_verbosity())")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout.strip()) == logging.DEBUG


def test_optuna_is_quiet_only_inside_the_engines_scope():
    from medattn.study.engine import optuna_quiet

    before = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.INFO)
    try:
        with optuna_quiet():
            assert optuna.logging.get_verbosity() == logging.WARNING
        assert optuna.logging.get_verbosity() == logging.INFO
    finally:
        optuna.logging.set_verbosity(before)
