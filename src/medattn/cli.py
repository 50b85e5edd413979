"""The `medattn` command line: thin Typer commands that call the library and print with rich."""

from __future__ import annotations

import sys

import typer

from medattn.analysis.cli import features_command, probe_command, scorecard_command
from medattn.data.cli import app as data_app
from medattn.errors import UserError
from medattn.explain.cli import explain_command
from medattn.models.cli import app as models_app
from medattn.pretrain.cli import pretrain_command
from medattn.report.cli import report_command
from medattn.segment.cli import app as segment_app
from medattn.study.cli import app as study_app
from medattn.survey.cli import app as survey_app
from medattn.train.cli import train_command

app = typer.Typer(help="Does adding attention to my CNN help on my medical images?", no_args_is_help=True,
                  pretty_exceptions_enable=False)
app.add_typer(data_app, name="data")
app.command("train")(train_command)
app.command("pretrain")(pretrain_command)
app.command("explain")(explain_command)
app.add_typer(models_app, name="models")
app.add_typer(study_app, name="study")
app.add_typer(segment_app, name="segment")
app.add_typer(survey_app, name="survey")
app.command("report")(report_command)
app.command("features")(features_command)
app.command("probe")(probe_command)
app.command("scorecard")(scorecard_command)


def main() -> None:
    """Entry point: run the Typer app and exit with its code (typer.Exit included); user errors exit 2."""
    try:
        code = app(standalone_mode=False)  # returns the code of a typer.Exit / click Exit (0/1/2/130 ...)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        print("aborted", file=sys.stderr)
        sys.exit(130)
    except Exception as exc:
        if hasattr(exc, "show") and hasattr(exc, "exit_code"):  # click usage errors (typer vendors click)
            exc.show()
            sys.exit(exc.exit_code)
        raise
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
