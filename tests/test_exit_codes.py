"""The exit-code contract of the installed `medattn` console script: 2 for every user error, in every command.

Each case runs the real entry point (`medattn`, next to the interpreter) in a subprocess, as a shell script, a
CI job or a SLURM array would. The workers' 0/1/130 are tested in tests/study/test_worker_exit_codes.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

MEDATTN = Path(sys.executable).parent / "medattn"


def medattn(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run the installed console script with this environment (PYTHONPATH included)."""
    assert MEDATTN.is_file(), f"console script not found at {MEDATTN}: `pip install -e .` installs it"
    return subprocess.run([str(MEDATTN), *args], capture_output=True, text=True, timeout=300, env=dict(os.environ),
                          cwd=cwd)


VALID_SPEC = {"name": "exit", "datasets": [{"spec": "synthetic:derm-synth?n=100&size=28", "name": "d"}],
              "models": {"list": [{"backbone": "resnet18"}]}, "train": {"epochs": 1},
              "tuning": {"trials": 0}, "seeds": 1}


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Bad config files and spec files that the cases below refer to as {tmp}/NAME."""
    tmp = tmp_path_factory.mktemp("exit")
    (tmp / "broken.yaml").write_text("model: [unclosed\n")
    (tmp / "extra-section.yaml").write_text(yaml.safe_dump({"model": {}, "optimiser": {"lr": 1}}))
    (tmp / "bad-field.yaml").write_text(yaml.safe_dump({"train": {"lr": -1}}))
    (tmp / "bad-spec.yaml").write_text(yaml.safe_dump({**VALID_SPEC, "seeds": -3}))
    (tmp / "valid.yaml").write_text(yaml.safe_dump({**VALID_SPEC, "output": str(tmp / "never-run")}))
    return tmp


SYNTH = "synthetic:derm-synth?n=200"
USER_ERRORS = [  # (arguments, text the one-line error must contain)
    (["data", "info", "imagenet:x"], "unknown kind 'imagenet'"),
    (["data", "info", "medmnist:/no/such.npz"], "/no/such.npz"),
    (["train", "--data", "medmnist:/no/such.npz"], "/no/such.npz: file not found"),
    (["train", "--data", SYNTH, "--backbone", "resnet19"], "resnet19"),
    (["train", "--data", SYNTH, "--attention", "sse"], "sse"),
    (["train", "--data", SYNTH, "--epochs", "-1"], "train.epochs"),
    (["train", "--data", SYNTH, "--config", "/no/cfg.yaml"], "/no/cfg.yaml: file not found"),
    (["train", "--data", SYNTH, "--config", "{tmp}/broken.yaml"], "invalid YAML"),
    (["train", "--data", SYNTH, "--config", "{tmp}/extra-section.yaml"], "optimiser"),
    (["train", "--data", SYNTH, "--config", "{tmp}/bad-field.yaml"], "train.lr"),
    (["models", "cost", "--backbone", "bad"], "unknown backbone 'bad'"),
    (["models", "cost", "--attention", "foo"], "unknown mechanism 'foo'"),
    (["models", "cost", "--backbone", "vit_tiny", "--attention", "se"], "cannot hold"),
    (["study", "run", "/no/spec.yaml"], "/no/spec.yaml"),
    (["study", "run", "{tmp}/bad-spec.yaml"], "seeds"),
    (["study", "work", "/no/spec.yaml"], "/no/spec.yaml"),
    (["study", "work", "{tmp}/bad-spec.yaml"], "seeds"),
    (["study", "status", "/no/spec.yaml"], "/no/spec.yaml"),
    (["study", "status", "{tmp}/valid.yaml"], "no study storage"),
    (["study", "results", "/no/spec.yaml"], "/no/spec.yaml"),
    (["study", "results", "{tmp}/valid.yaml"], "no study storage"),
    (["report", "/no/run/dir"], "/no/run/dir"),
    (["survey", "create", "/no/run/dir"], "/no/run/dir/explanations"),
    (["survey", "serve", "/no/such.db"], "survey database not found"),
    (["survey", "analyze", "/no/such.db"], "survey database not found"),
    (["features", "/no/run/dir"], "/no/run/dir: run directory not found"),
    (["probe", "/no/run/dir"], "/no/run/dir: run directory not found"),
]


@pytest.fixture(scope="module")
def user_error_runs(files: Path) -> list[subprocess.CompletedProcess]:
    """Every USER_ERRORS case, run once, as many at a time as there are cores (each start imports torch)."""
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        return list(pool.map(lambda args: medattn(*(a.replace("{tmp}", str(files)) for a in args)),
                             [args for args, _ in USER_ERRORS]))


@pytest.mark.parametrize(("case", "expected"), [(i, e) for i, (_, e) in enumerate(USER_ERRORS)],
                         ids=[" ".join(a[:2]) + f"-{i}" for i, (a, _) in enumerate(USER_ERRORS)])
def test_user_errors_exit_2_with_one_line(user_error_runs: list[subprocess.CompletedProcess], case: int,
                                          expected: str) -> None:
    done = user_error_runs[case]
    assert done.returncode == 2, f"exit {done.returncode}\n{done.stdout}{done.stderr}"
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0] and "Traceback" not in done.stderr, done.stderr


def _leaf_commands() -> list[tuple[str, ...]]:
    """Every command path of the app (`train`, `study run`, ...), including those added later."""
    import typer

    from medattn.cli import app

    def walk(command, path: tuple[str, ...]) -> list[tuple[str, ...]]:
        subcommands = getattr(command, "commands", None)
        if not subcommands:
            return [path]
        return [leaf for name, sub in sorted(subcommands.items()) for leaf in walk(sub, (*path, name))]

    return walk(typer.main.get_command(app), ())


@pytest.mark.parametrize("command", _leaf_commands(), ids=" ".join)
def test_usage_errors_exit_2_in_every_command(command: tuple[str, ...]) -> None:
    done = medattn(*command, "--no-such-option")
    assert done.returncode == 2, f"exit {done.returncode}\n{done.stdout}{done.stderr}"
    assert "No such option" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("args", [["no-such-command"], ["study", "run"], ["study", "run", "x.yaml", "--workers",
                                                                          "many"], []])
def test_click_usage_errors_exit_2(args: list[str]) -> None:
    done = medattn(*args)
    assert done.returncode == 2, f"exit {done.returncode}\n{done.stdout}{done.stderr}"
    assert "Usage" in done.stdout + done.stderr and "Traceback" not in done.stderr


def test_help_exits_0() -> None:
    done = medattn("study", "--help")
    assert done.returncode == 0 and "status" in done.stdout
