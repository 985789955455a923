"""Text logs cannot be forged: whatever a client sends, one record is one line.

A path or a header reaches the log as a message or an ``extra``; CR, LF and other control
characters in them once let a client write a line of its own ("... INFO gatepass.access: ...").
"""

from __future__ import annotations

import json
import logging
import sys

from gatepass.logs import JsonFormatter, TextFormatter

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
FORGED = "/x\r\n2030-01-01 00:00:00,000 INFO gatepass.access: request status=200"


def record(message: str, **extra: object) -> logging.LogRecord:
    entry = logging.makeLogRecord({"name": "gatepass.access", "levelno": 20, "levelname": "INFO"})
    entry.msg, entry.args = message, None
    entry.__dict__.update(extra)
    return entry


def test_a_forged_line_in_a_message_or_an_extra_stays_on_one_line() -> None:
    line = TextFormatter(FORMAT).format(
        record(f"request {FORGED}", path=FORGED, agent="a\x1b[31mred\u2028b\x85c", status=404)
    )
    assert "\n" not in line
    assert "\r" not in line
    assert "\x1b" not in line
    assert "\u2028" not in line
    assert "\x85" not in line
    assert "request /x\\r\\n2030-01-01" in line
    # A value with a space is quoted, so "status=200" inside it is not another field.
    assert 'path="/x\\r\\n2030-01-01 00:00:00,000 INFO gatepass.access: request status=200"' in line
    assert line.endswith(" status=404")
    assert 'agent="a\\x1b[31mred\\u2028b\\x85c"' in line  # separators are spaces: quoted


def test_quotes_and_backslashes_in_a_quoted_value_cannot_close_it() -> None:
    line = TextFormatter(FORMAT).format(record("request", path='/a" status="200\\'))
    assert line.endswith(' path="/a\\" status=\\"200\\\\"')


def test_a_traceback_keeps_its_lines_but_none_can_pass_for_a_record() -> None:
    try:
        raise ValueError(FORGED)
    except ValueError:
        entry = record("failed")
        entry.exc_info = sys.exc_info()
    first, *rest = TextFormatter(FORMAT).format(entry).split("\n")
    assert first.endswith("gatepass.access: failed")
    assert rest
    assert all(line.startswith("  | ") for line in rest)
    # The message's own line break stays a break, but the forged "record" is indented.
    assert "  | 2030-01-01 00:00:00,000 INFO gatepass.access: request status=200" in rest


def test_json_lines_escape_everything_too() -> None:
    line = JsonFormatter().format(record(f"request {FORGED}", path=FORGED))
    assert "\n" not in line
    assert "\r" not in line
    assert json.loads(line)["path"] == FORGED
