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


def _loopback(host: str) -> bool:
    """Return True when ``host`` is a loopback interface (localhost, 127.0.0.0/8, ::1)."""
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _base_url(base_url: str | None, host: str, port: int) -> str:
    """Return the invitation links' base URL: ``--base-url`` checked, or this server's own address."""
    from urllib.parse import urlsplit

    if base_url is None:
        return f"http://{host}:{port}"
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise SurveyError(f"--base-url: {base_url!r} is not an http(s)://HOST[:PORT][/PATH] URL; give the address "
                          "raters open, e.g. https://survey.example.org")
    return base_url.rstrip("/")


@app.command("serve")
def serve(
    db: str = typer.Argument(..., help="Survey database (file or postgresql:// URL)."),
    host: str = typer.Option("127.0.0.1", help="Interface to listen on (0.0.0.0 for every interface)."),
    port: int = typer.Option(8000, help="TCP port."),
    images: Path = typer.Option(None, help="Folder of the rendered panels (default: as recorded at creation)."),
    base_url: str = typer.Option(None, help="Address raters open, used in invitation links (e.g. "
                                 "https://survey.example.org behind a TLS proxy); default http://HOST:PORT."),
) -> None:
    """Serve the survey (raters at /r/<token>, admin at /admin); tokens never appear in the log."""
    import uvicorn

    from medattn.survey.app import create_app

    links = _base_url(base_url, host, port)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    application = create_app(db, images, links)
    if not _loopback(host) and not links.startswith("https://"):
        typer.echo(f"warning: serving plain HTTP on {host}: tokens and answers cross the network unencrypted; "
                   "bind to 127.0.0.1 behind a TLS proxy and pass --base-url https://...", err=True)
    console.print(f"survey at http://{host}:{port}/admin (admin) and /r/<token> (raters); links start {links}")
    uvicorn.run(application, host=host, port=port, access_log=False, log_level="warning")


@app.command("upgrade")
def upgrade(db: str = typer.Argument(..., help="Survey database (file or postgresql:// URL).")) -> None:
    """Bring a survey made by an older medattn to this version (secret blinding key, new columns)."""
    from medattn.survey.blinding import new_key
    from medattn.survey.store import make_engine, upgrade_schema

    changed = upgrade_schema(make_engine(db), new_key)
    console.print(f"{db}: {'upgraded' if changed else 'already up to date'}")


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
    from medattn.survey.export import answers_frame, write_csv
    from medattn.survey.report_tables import write_analysis
    from medattn.survey.store import make_engine, read_meta, session_factory

    engine = make_engine(db)
    with session_factory(engine)() as session:
        meta, answers = read_meta(session), answers_frame(session)
    out = out or Path(meta["run_dir"]) / layout.SURVEY
    out.mkdir(parents=True, exist_ok=True)
    write_csv(answers, out / layout.SURVEY_ANSWERS)
    result = analyze_answers(answers, source=str(db))
    write_analysis(result, out)
    console.print(f"{result.n_raters} raters, {result.n_items} images, {result.n_answers} answers; tables in {out}/")
    if result.note:
        console.print(f"[bold]{result.note}[/bold]")
    _print_table(result.win_rates, "win rate (best-map choices), 95% CI clustered by rater")
    _print_table(result.bradley_terry, "Bradley-Terry strengths (choix ilsr_top1)")
    _print_table(result.likert, "clinical relevance 1-5, mean and 95% CI clustered by rater")
    if result.friedman:
        f = result.friedman
        console.print(f"Friedman across maps: chi2 = {f['chi2']:.3g}, p = {format_p(f['p_value'])} "
                      f"({f['blocks']} raters as blocks)")
    if len(result.paired):
        paired = result.paired if not result.note else result.paired.drop(columns=["p_t", "p_wilcoxon", "p_holm"])
        _print_table(paired, "attention vs plain backbone (paired by rater and image, clustered by rater)")
    _print_table(result.agreement, "inter-rater agreement")
    _print_table(result.by_experience, "by rater experience")
