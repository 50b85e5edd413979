"""Form fields as the survey accepts them: ASCII whole numbers in a range, text without NULs or over-long values.

Python's ``str.isdigit`` accepts '²' and '٣' and ``int`` then fails or reads another script's digits; a
field is a number here only when it is 1 to 3 ASCII digits. NUL characters are removed from free text
(PostgreSQL refuses them in a text column; SQLite would store them and write them into the export).
"""

from __future__ import annotations

import re

ASCII_NUMBER = re.compile(r"[0-9]{1,3}")


def whole_number(value: str | None, low: int, high: int) -> int | None:
    """Return ``value`` as an int when it is 1-3 ASCII digits within [low, high], else None."""
    text = (value or "").strip()
    if not ASCII_NUMBER.fullmatch(text):
        return None
    number = int(text)
    return number if low <= number <= high else None


def clean_text(value: str | None) -> str:
    """Return free text with NUL characters removed and surrounding whitespace stripped."""
    return (value or "").replace("\x00", "").strip()
