"""The run directory as one contract: its file names, results columns, metrics, schema version, reader, writer.

Low floor: imports only the standard library, numpy, pandas and :mod:`medattn.errors`, so every layer
(train, study, stats, explain, analysis, report, survey) may import it.
"""

from medattn.rundir.columns import RESULT_COLUMNS, Column
from medattn.rundir.layout import LAYOUT, RunPath
from medattn.rundir.metrics import METRICS, Metric
from medattn.rundir.reader import RunData, load_run
from medattn.rundir.version import SCHEMA_VERSION

__all__ = [
    "LAYOUT", "METRICS", "RESULT_COLUMNS", "SCHEMA_VERSION", "Column", "Metric", "RunData", "RunPath", "load_run",
]
