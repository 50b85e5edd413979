"""`medattn study ...`: run a study locally, join one from any machine, watch it, export its results."""

from __future__ import annotations

import functools
import os
import sys
import time
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.live import Live

from medattn.errors import UserError

app = typer.Typer(help="Studies: every model tuned with the same budget, retrained over seeds, one table "
                       "of results. Storage: a journal file in the output directory, or a database URL "
                       "(PostgreSQL) shared by workers on many machines.", no_args_is_help=True)
console = Console()
err_console = Console(stderr=True)

F = TypeVar("F", bound=Callable[..., Any])

SPEC_ARG = typer.Argument(..., help="Study spec (YAML), e.g. examples/quickstart.yaml.", show_default=False)
STORAGE_OPT = typer.Option(None, "--storage", help="Storage URL (postgresql://user:pass@host/db, "
                                                   "sqlite:///file.db) or journal file; default: the spec's "
                                                   "`storage`, else OUT/study.journal.")
OUT_OPT = typer.Option(None, "--out", help="Output/artifact directory; default: the spec's `output`, "
                                           "else runs/<study name>.")


class Format(str, Enum):
    """Results file formats."""

    csv = "csv"
    parquet = "parquet"


class StageChoice(str, Enum):
    """Which runs to export."""

    final = "final"
    tune = "tune"
    all = "all"


def _user_errors(fn: F) -> F:
    """Print a UserError as one line and exit 2 (no traceback)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except UserError as exc:
            err_console.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None

    return wrapper  # type: ignore[return-value]


def _say(msg: str) -> None:
    """Print a worker's progress line (the library logs it; this command shows it as it comes)."""
    print(msg, flush=True)


def _plan(spec: Path, storage: str | None, out: Path | None):
    """The study's plan; the spec is read first, so its errors come before torch and optuna are imported."""
    from medattn.study.spec import load_spec

    study = load_spec(spec)
    from medattn.study.plan import make_plan

    return make_plan(study, out, storage)


@app.command()
@_user_errors
def run(spec: Path = SPEC_ARG,
        workers: int = typer.Option(1, "--workers", "-w", min=0,
                                    help="Local worker processes; 0 only plans the study (then start "
                                         "`medattn study work` anywhere)."),
        storage: str | None = STORAGE_OPT, out: Path | None = OUT_OPT,
        threads: int | None = typer.Option(None, "--threads", min=1,
                                           help="CPU threads per worker; default: cores / workers.")) -> None:
    """Plan the study, run it with local workers, write OUT/results.csv. Re-running resumes."""
    plan = _plan(spec, storage, out)
    from medattn.rundir.layout import RESULTS_CSV
    from medattn.rundir.writer import write_results
    from medattn.study.engine import Engine
    from medattn.study.hooks import after_study
    from medattn.study.plan import validate_plan
    from medattn.study.results import collect_results
    from medattn.study.status import status_table, study_progress
    from medattn.study.worker import run_local_workers

    validate_plan(plan)  # every dataset loads and every model builds before any training
    engine = Engine(plan, log=_say)
    engine.ensure_planned()
    n_runs = len(plan.units) * (plan.spec.tuning.trials + len(plan.seeds))
    console.print(f"study [bold]{plan.spec.name}[/bold]: {len(plan.datasets)} dataset(s) x {len(plan.models)} "
                  f"model(s), {plan.spec.tuning.trials} tuning trial(s) + {len(plan.seeds)} seed(s) each = "
                  f"{n_runs} runs; storage {plan.storage_url}", highlight=False)
    if workers == 0:
        console.print(f"planned. Start workers with: medattn study work {spec} --storage '{plan.storage_url}' "
                      f"--out {plan.out_dir}", highlight=False)
        return
    start = time.time()
    codes = run_local_workers(spec, plan, workers, threads, log=_say)
    console.print(status_table(plan, study_progress(plan, engine.storage)))
    bad = [(i, c) for i, c in enumerate(codes) if c not in (0, 1)]
    if bad:
        err_console.print("worker(s) " + ", ".join(f"w{i} exited with {c}" for i, c in bad)
                          + "; run the same command again to resume (finished runs are kept)")
        raise typer.Exit(1)
    path = write_results(collect_results(plan, engine.storage), plan.out_dir / RESULTS_CSV)
    extra = after_study(plan.spec, plan.out_dir)
    console.print(f"done in {time.time() - start:.0f}s. Results: {path}", highlight=False)
    for p in extra:
        console.print(f"  {p}", highlight=False)
    if any(c == 1 for c in codes):
        err_console.print("some runs failed for good; see `medattn study status` and the worker logs above")
        raise typer.Exit(1)


@app.command()
@_user_errors
def work(spec: Path = SPEC_ARG, storage: str | None = STORAGE_OPT, out: Path | None = OUT_OPT,
         threads: int | None = typer.Option(None, "--threads", min=1, help="CPU threads for this worker."),
         name: str | None = typer.Option(None, "--name", help="Worker name shown in logs."),
         max_runs: int | None = typer.Option(None, "--max-runs", min=1,
                                             help="Stop after this many runs (e.g. to fit a job's time limit)."),
         skip_checks: bool = typer.Option(False, "--skip-checks",
                                          help="Skip loading every dataset and building every model up front.")
         ) -> None:
    """Join a study as one worker (any machine that sees the storage and the output directory)."""
    plan = _plan(spec, storage, out)
    from medattn.study.plan import validate_plan
    from medattn.study.worker import run_worker

    if threads:
        import torch

        torch.set_num_threads(threads)
    if not skip_checks:
        validate_plan(plan)
    result = run_worker(plan, name=name or f"{os.uname().nodename}-{os.getpid()}", max_runs=max_runs,
                        log=_say)
    raise typer.Exit(result.exit_code)


@app.command()
@_user_errors
def status(spec: Path = SPEC_ARG, storage: str | None = STORAGE_OPT, out: Path | None = OUT_OPT,
           watch: bool = typer.Option(False, "--watch", help="Refresh until the study is complete."),
           interval: float = typer.Option(5.0, "--interval", min=0.5, help="Seconds between refreshes.")) -> None:
    """Show done / running / failed / pending runs per dataset and model, with an ETA."""
    plan = _plan(spec, storage, out)
    _require_existing(plan)
    from medattn.study.engine import open_plan_storage
    from medattn.study.status import is_complete, status_table, study_progress

    store = open_plan_storage(plan)
    progress = study_progress(plan, store)
    if not watch:
        console.print(status_table(plan, progress))
        return
    with Live(status_table(plan, progress), console=console, refresh_per_second=1) as live:
        while not is_complete(progress):
            time.sleep(interval)
            progress = study_progress(plan, store)
            live.update(status_table(plan, progress))


@app.command()
@_user_errors
def results(spec: Path = SPEC_ARG, storage: str | None = STORAGE_OPT, out: Path | None = OUT_OPT,
            fmt: Format = typer.Option(Format.csv, "--format", help="csv or parquet."),
            output: Path | None = typer.Option(None, "--output", "-o",
                                               help="File to write; default OUT/results.<format>."),
            stage: StageChoice = typer.Option(StageChoice.final, "--stage",
                                              help="final (seed runs), tune (tuning trials) or all."),
            artifacts: Path | None = typer.Option(None, "--artifacts",
                                                  help="Where the artifacts are on this machine; default OUT.")
            ) -> None:
    """Write the tidy results table: one row per run x split x metric."""
    plan = _plan(spec, storage, out)
    _require_existing(plan)
    from medattn.rundir.writer import write_results
    from medattn.study.engine import open_plan_storage
    from medattn.study.results import collect_results

    frame = collect_results(plan, open_plan_storage(plan), stage.value, artifacts)
    path = write_results(frame, output or plan.out_dir / f"results.{fmt.value}", fmt.value)
    runs = frame.drop_duplicates(["dataset", "model", "stage", "seed", "trial"]) if len(frame) else frame
    console.print(f"{len(runs)} run(s), {len(frame)} row(s) -> {path}", highlight=False)


def _require_existing(plan: Any) -> None:
    """A journal storage that does not exist means a wrong --out/--storage: say so instead of creating one."""
    url = plan.storage_url
    if url.startswith("journal:") and not Path(url.removeprefix("journal:")).exists():
        raise UserError(f"no study storage at {url.removeprefix('journal:')}; run `medattn study run "
                        f"{plan.spec.source}` first, or pass the --out/--storage the study used")


if __name__ == "__main__":  # `python -m medattn.study.cli work ...` is how local worker subprocesses start
    sys.exit(app())
