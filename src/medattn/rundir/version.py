"""The run directory's schema version: written into study.json and every model.json, checked on read.

Bump :data:`SCHEMA_VERSION` when a file of :data:`medattn.rundir.layout.LAYOUT` changes meaning; a reader
refuses a newer version (written by a newer medattn) instead of misreading it. Files without a version
predate it (version 0) and are read, migrating what changed (absolute paths, see the reader).
"""

from __future__ import annotations

from pathlib import Path

from medattn.errors import DataError

SCHEMA_VERSION: int = 1
SCHEMA_KEY = "schema_version"


def check_schema(record: dict, where: Path | str) -> int:
    """Return the schema version of a study.json / model.json record; DataError if newer than this medattn's."""
    version = record.get(SCHEMA_KEY, 0)
    if not isinstance(version, int) or version < 0:
        raise DataError(f"{where}: {SCHEMA_KEY} {version!r} is not a version number; re-run the stage that wrote it")
    if version > SCHEMA_VERSION:
        raise DataError(f"{where}: written with run-directory schema {version}, this medattn reads up to "
                        f"{SCHEMA_VERSION}; upgrade medattn (pip install -U medattn) to read it")
    return version
