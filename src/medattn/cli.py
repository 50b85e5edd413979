"""The `medattn` command line: thin Typer commands that call the library and print with rich."""

from __future__ import annotations

import sys

import typer

from medattn.data.cli import app as data_app
from medattn.errors import UserError
from medattn.explain.cli import explain_command
from medattn.models.cli import app as models_app
from medattn.report.cli import report_command
from medattn.study.cli import app as study_app
from medattn.train.cli import train_command

app = typer.Typer(help="Does adding attention to my CNN help on my medical images?", no_args_is_help=True,
                  pretty_exceptions_enable=False)
app.add_typer(data_app, name="data")
app.command("train")(train_command)
app.command("explain")(explain_command)
app.add_typer(models_app, name="models")
app.add_typer(study_app, name="study")
app.command("report")(report_command)


def main() -> None:
    """Entry point: run the Typer app, turning user errors into one line on stderr and exit code 2."""
    try:
        app(standalone_mode=False)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        print("aborted", file=sys.stderr)
        sys.exit(130)
    except Exception as exc:
        if hasattr(exc, "show") and hasattr(exc, "exit_code"):  # click usage errors (typer vendors click)
            exc.show()
            sys.exit(2)
        raise


if __name__ == "__main__":
    main()
