"""``gatepass.text``: one rule for what client text may hold, and a cleaner for what is recorded."""

from __future__ import annotations

from typing import Annotated

import pytest
from pydantic import BaseModel, StringConstraints, ValidationError

from gatepass.text import MultiLine, OneLine, printable


class Form(BaseModel):
    name: Annotated[str, StringConstraints(max_length=20), OneLine] = "x"
    note: Annotated[str, StringConstraints(max_length=200), MultiLine] = "x"


@pytest.mark.parametrize(
    "bad", ["\x00", "a\x00b", "\x1b[2J", "tab\there", "new\nline", "\x7f", "\x85"]
)
def test_one_line_refuses_every_control_character(bad: str) -> None:
    with pytest.raises(ValidationError) as refused:
        Form(name=bad)
    (error,) = refused.value.errors(include_input=False)
    assert error["loc"] == ("name",)
    assert bad not in str(error["msg"])


@pytest.mark.parametrize("bad", ["\x00", "bell\x07", "\x1b[2J", "\x0b", "\x0c", "\x7f", "\x9b"])
def test_multi_line_refuses_controls_but_line_breaks_and_tabs(bad: str) -> None:
    with pytest.raises(ValidationError):
        Form(note=bad)
    assert Form(note="one\ttwo\r\nthree\n").note == "one\ttwo\r\nthree\n"


@pytest.mark.parametrize(
    "bad",
    [
        "evil\u202eexe.txt",  # RIGHT-TO-LEFT OVERRIDE: text that reads other than it is
        "\u202a\u202b\u202c\u202d",
        "isolate\u2066x\u2069",
        "line\u2028separator",
        "para\u2029separator",
    ],
)
def test_bidi_overrides_and_unicode_line_breaks_are_refused(bad: str) -> None:
    with pytest.raises(ValidationError):
        Form(name=bad)
    with pytest.raises(ValidationError):
        Form(note=bad.replace("\u2028", "\u202e").replace("\u2029", "\u202e"))


def test_ordinary_text_of_any_script_passes() -> None:
    assert Form(name="Zoë 🦊 日本語").name == "Zoë 🦊 日本語"
    # Joiners belong to ordinary text (emoji sequences, Indic scripts): not refused.
    family = "\U0001f468\u200d\U0001f469\u200d\U0001f467"
    assert Form(name=family).name == family
    assert Form(name="עברית \u200f(RLM)").name == "עברית \u200f(RLM)"


def test_printable_cleans_and_bounds_without_failing() -> None:
    assert printable(None, 10) is None
    assert printable("\x00\x01", 10) is None
    assert printable("Mozilla\x00/5.0\r\n (X11)", 100) == "Mozilla/5.0 (X11)"
    assert printable("203.0.113.7," * 20, 64) == ("203.0.113.7," * 20)[:64]
    assert printable("\ud800a", 5) == "a"
