"""Text from clients: what no field may hold, checked in one place, with each field's bounds.

PostgreSQL refuses a NUL character in any text value (SQLite stores it), so a NUL that got past
validation fails in the database, as a 500, after the request was accepted; and a value longer
than its column fails the same way there. So every text a gatepass service takes from a client is
checked where the request is parsed, with the other constraints of its field, and refused as any
invalid value is (422 problem+json, the value never echoed):

- :data:`OneLine`: no control character at all (C0, DEL, C1, bidirectional overrides, Unicode
  line separators): names, subjects, emails, roles::

      subject: Annotated[str, StringConstraints(max_length=200), OneLine]

- :data:`MultiLine`: the same, except tab, line feed and carriage return: a message's body;
- :data:`ResourceId`: a path segment naming a row (``usr_…``, ``msg_…``): letters, digits, ``_``
  and ``-`` (what :func:`secrets.token_urlsafe` makes), 1 to :data:`MAX_ID_LENGTH` characters;
- :func:`printable`: for text a service records without asking for it (a User-Agent, an address
  in an audit row): control characters dropped and the length cut to the column's, never an error.

Each field's ``max_length`` is its column's length (both count characters). A lone surrogate
(``"\\ud800"`` in JSON) never gets this far: pydantic refuses it as ``string_unicode``.
"""

from __future__ import annotations

import re
from typing import Annotated, Final

from fastapi import Path
from pydantic import AfterValidator

__all__ = [
    "ID_PATTERN",
    "MAX_ID_LENGTH",
    "MultiLine",
    "OneLine",
    "ResourceId",
    "printable",
]

MAX_ID_LENGTH: Final = 64
ID_PATTERN: Final = r"^[A-Za-z0-9_-]+$"

# C0 controls, DEL and C1 controls; surrogates, which no UTF-8 text can hold; the bidirectional
# embeddings, overrides and isolates (U+202A-E, U+2066-9), which make text read other than it
# is (a title "evil\u202etxt.exe"); and, in one-line text, Unicode's line and paragraph separators.
# Joiners and the left-to-right/right-to-left marks are ordinary text (emoji, Hebrew) and pass.
_BIDI = "\u202a-\u202e\u2066-\u2069"
_CONTROL: Final = re.compile(f"[\\x00-\\x1f\\x7f-\\x9f\\ud800-\\udfff\u2028\u2029{_BIDI}]")
_CONTROL_BUT_LINE_BREAKS: Final = re.compile(
    f"[\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f-\\x9f\\ud800-\\udfff{_BIDI}]"
)


def refuse_controls(value: str) -> str:
    """``value``, unless it holds a control character (a ``ValueError`` that does not echo it)."""
    if _CONTROL.search(value):
        raise ValueError("control characters (such as NUL) are not allowed here")
    return value


def refuse_controls_but_line_breaks(value: str) -> str:
    """``value``, unless it holds a control character other than tab, LF or CR."""
    if _CONTROL_BUT_LINE_BREAKS.search(value):
        raise ValueError("control characters (such as NUL) are not allowed here")
    return value


OneLine: Final = AfterValidator(refuse_controls)
"""In ``Annotated[str, ..., OneLine]``: refuse every control character."""

MultiLine: Final = AfterValidator(refuse_controls_but_line_breaks)
"""In ``Annotated[str, ..., MultiLine]``: refuse control characters but tab, LF and CR."""

ResourceId = Annotated[
    str, Path(min_length=1, max_length=MAX_ID_LENGTH, pattern=ID_PATTERN, description="an id")
]
"""A path parameter naming a row: ``async def read(message_id: ResourceId)``; else 422."""


def printable(value: str | None, max_length: int) -> str | None:
    """``value`` without control characters, cut to ``max_length``; ``None`` if nothing is left.

    For what is recorded, not asked for: refusing a request for its User-Agent, or failing an
    audit write for an odd address, would be worse than storing a cleaned copy.
    """
    if value is None:
        return None
    cleaned = _CONTROL.sub("", value)[:max_length]
    return cleaned or None
