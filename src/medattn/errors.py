"""User-caused errors: one line that names the file or field and the fix; the CLI exits 2 on them."""


class UserError(Exception):
    """An error the user can fix; its message is printed as one line, without a traceback."""

    exit_code = 2


class DataError(UserError):
    """A data file or data spec is missing, malformed or inconsistent."""


class SpecError(UserError):
    """A study, model or training spec has an unknown key or a bad value."""


class ModelError(UserError):
    """A backbone, attention mechanism or placement that does not exist or cannot be combined."""


class TrainingFailed(UserError):
    """A run diverged (NaN/inf loss); what was written so far is kept and the run is marked failed."""


class SurveyError(UserError):
    """A survey database, run directory or option is missing, malformed or inconsistent."""
