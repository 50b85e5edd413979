"""The exit-code contract of the `medattn` command: 2 for every user error, in every command.

Every case runs `medattn.cli.main`, the function the installed console script calls, with its own argv, and
checks the code it exits with and its one-line error. That is the path where the codes were once lost (main
discarded the app's return value). One case per command group also runs the installed console script
(`medattn`, next to the interpreter) in a subprocess, as a shell script, a CI job or a SLURM array would; each
such start imports torch, so the per-case sweep stays in-process. The workers' 0/1/130 are tested in
tests/study/test_worker_exit_codes.py.
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


def medattn_main(args: list[str], capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
                 ) -> tuple[int, str, str]:
    """Run the console script's entry function in this process: (exit code, stdout, stderr)."""
    from medattn.cli import main

    monkeypatch.setattr(sys, "argv", ["medattn", *args])
    with pytest.raises(SystemExit) as exited:
        main()
    captured = capsys.readouterr()
    return exited.value.code or 0, captured.out, captured.err


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
    (["explain", "/no/run/dir"], "/no/run/dir: run directory not found"),
    (["survey", "create", "/no/run/dir"], "/no/run/dir/explanations"),
    (["survey", "serve", "/no/such.db"], "survey database not found"),
    (["survey", "analyze", "/no/such.db"], "survey database not found"),
    (["features", "/no/run/dir"], "/no/run/dir: run directory not found"),
    (["probe", "/no/run/dir"], "/no/run/dir: run directory not found"),
]


def _with_files(args: list[str], files: Path) -> list[str]:
    return [a.replace("{tmp}", str(files)) for a in args]


def _assert_one_line_exit_2(code: int, out: str, err: str, expected: str) -> None:
    assert code == 2, f"exit {code}\n{out}{err}"
    lines = err.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0] and "Traceback" not in err, err


@pytest.mark.parametrize(("args", "expected"), USER_ERRORS,
                         ids=[" ".join(a[:2]) + f"-{i}" for i, (a, _) in enumerate(USER_ERRORS)])
def test_user_errors_exit_2_with_one_line(args: list[str], expected: str, files: Path,
                                          capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    _assert_one_line_exit_2(*medattn_main(_with_files(args, files), capsys, monkeypatch), expected)


GROUP_CASES = {args[0]: (args, expected) for args, expected in reversed(USER_ERRORS)}  # first case of each group


@pytest.fixture(scope="module")
def console_script_runs(files: Path) -> dict[str, subprocess.CompletedProcess]:
    """The first USER_ERRORS case of every command group through the console script, one per core at a time."""
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        runs = pool.map(lambda case: medattn(*_with_files(case[0], files)), GROUP_CASES.values())
        return dict(zip(GROUP_CASES, runs, strict=True))


@pytest.mark.parametrize("group", sorted(GROUP_CASES))
def test_console_script_exits_2_in_every_command_group(group: str, console_script_runs) -> None:
    done = console_script_runs[group]
    _assert_one_line_exit_2(done.returncode, done.stdout, done.stderr, GROUP_CASES[group][1])


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
def test_usage_errors_exit_2_in_every_command(command: tuple[str, ...], capsys: pytest.CaptureFixture,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    code, out, err = medattn_main([*command, "--no-such-option"], capsys, monkeypatch)
    assert code == 2, f"exit {code}\n{out}{err}"
    assert "No such option" in err and "Traceback" not in err


@pytest.mark.parametrize("args", [["no-such-command"], ["study", "run"], ["study", "run", "x.yaml", "--workers",
                                                                          "many"], []])
def test_click_usage_errors_exit_2(args: list[str]) -> None:
    done = medattn(*args)
    assert done.returncode == 2, f"exit {done.returncode}\n{done.stdout}{done.stderr}"
    assert "Usage" in done.stdout + done.stderr and "Traceback" not in done.stderr


def test_help_exits_0() -> None:
    done = medattn("study", "--help")
    assert done.returncode == 0 and "status" in done.stdout
