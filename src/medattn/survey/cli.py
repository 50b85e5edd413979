"""``medattn survey create | serve | analyze``: the clinician survey from the command line."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pandas as pd
import typer
from rich.console import Console
from rich.table import Table

from medattn.errors import SurveyError

app = typer.Typer(help="Clinicians rate explanation maps in the browser, blinded.", no_args_is_help=True)
console = Console(width=None if sys.stdout.isatty() else 140)


def _names(text: str | None, option: str) -> list[str] | None:
    """Return a comma-separated option as a list (None when not given)."""
    if text is None:
        return None
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise SurveyError(f"{option}: give comma-separated names, got {text!r}")
    return names


@app.command("create")
def create(
    run_dir: Path = typer.Argument(..., help="Study run directory with explanations/ (from `medattn explain`)."),
    methods: str = typer.Option("gradcam", help="Comma-separated explanation methods, e.g. gradcam,attention."),
    models: str = typer.Option(None, help="Comma-separated models (default: every explained model)."),
    items: int = typer.Option(40, help="Number of images to rate."),
    out: str = typer.Option("survey.db", help="Survey database: a file (SQLite) or a postgresql:// URL."),
    images: Path = typer.Option(None, help="Folder for the rendered panels (default: beside a SQLite file)."),
    dataset: str = typer.Option(None, help="Dataset, when the run explains several."),
    target: str = typer.Option("predicted", help="Maps explaining the 'predicted' or the 'true' class."),
    seed: int = typer.Option(0, help="Seed of the item draw and of every rater's blinding."),
) -> None:
    """Build a survey from a run's stored explanation maps and print the admin token (once)."""
    from medattn.survey.create import create_survey

    made = create_survey(run_dir, out, _names(methods, "--methods"), items, models=_names(models, "--models"),
                         dataset=dataset, target=target, seed=seed, images_dir=images)
    console.print(f"survey: {made.n_items} images x {len(made.arms)} maps ({', '.join(made.arms)})")
    console.print(f"database: {out}; images: {made.images_dir}")
    console.print(f"admin token (shown only now, stored hashed): [bold]{made.admin_token}[/bold]", soft_wrap=True)
    console.print(f"next: medattn survey serve {out}  then open http://127.0.0.1:8000/admin")


@app.command("serve")
def serve(
    db: str = typer.Argument(..., help="Survey database (file or postgresql:// URL)."),
    host: str = typer.Option("127.0.0.1", help="Interface to listen on (0.0.0.0 for every interface)."),
    port: int = typer.Option(8000, help="TCP port."),
    images: Path = typer.Option(None, help="Folder of the rendered panels (default: as recorded at creation)."),
) -> None:
    """Serve the survey (raters at /r/<token>, admin at /admin); tokens never appear in the log."""
    import uvicorn

    from medattn.survey.app import create_app

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    application = create_app(db, images)
    console.print(f"survey at http://{host}:{port}/admin (admin) and /r/<token> (raters)")
    uvicorn.run(application, host=host, port=port, access_log=False, log_level="warning")


def _print_table(frame: pd.DataFrame, title: str) -> None:
    """Print a DataFrame as a rich table (floats with 3 significant digits)."""
    table = Table(title=title)
    for column in frame.columns:
        table.add_column(str(column), justify="right" if pd.api.types.is_numeric_dtype(frame[column]) else "left")
    for row in frame.itertuples(index=False):
        table.add_row(*(f"{v:.3g}" if isinstance(v, float) else str(v) for v in row))
    console.print(table)


@app.command("analyze")
def analyze(
    db: str = typer.Argument(..., help="Survey database (file or postgresql:// URL)."),
    out: Path = typer.Option(None, help="Output folder (default: RUN_DIR/survey, where `medattn report` reads it)."),
) -> None:
    """Export the de-blinded answers and print preference, relevance-score and agreement statistics."""
    from medattn.rundir import layout
    from medattn.stats.rounding import format_p
    from medattn.survey.analyze import analyze_answers
    from medattn.survey.export import answers_frame
    from medattn.survey.report_tables import write_analysis
    from medattn.survey.store import make_engine, read_meta, session_factory

    engine = make_engine(db)
    with session_factory(engine)() as session:
        meta, answers = read_meta(session), answers_frame(session)
    out = out or Path(meta["run_dir"]) / layout.SURVEY
    out.mkdir(parents=True, exist_ok=True)
    answers.to_csv(out / layout.SURVEY_ANSWERS, index=False)
    result = analyze_answers(answers, source=str(db))
    write_analysis(result, out)
    console.print(f"{result.n_raters} raters, {result.n_items} images, {result.n_answers} answers; tables in {out}/")
    _print_table(result.win_rates, "win rate (best-map choices), Wilson 95% CI")
    _print_table(result.bradley_terry, "Bradley-Terry strengths (choix ilsr_top1)")
    _print_table(result.likert, "clinical relevance 1-5, mean and t 95% CI")
    if result.friedman:
        f = result.friedman
        console.print(f"Friedman across maps: chi2 = {f['chi2']:.3g}, p = {format_p(f['p_value'])} "
                      f"({f['blocks']} rater-image blocks)")
    if len(result.paired):
        _print_table(result.paired, "attention vs plain backbone (paired by rater and image)")
    _print_table(result.agreement, "inter-rater agreement")
    _print_table(result.by_experience, "by rater experience")
