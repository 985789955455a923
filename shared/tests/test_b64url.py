"""The strict base64url decoder under every token segment: it decodes what RFC 7515 allows, and
refuses all else, so no two different segments decode to the same bytes."""

from __future__ import annotations

import base64
import binascii

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gatepass.core._b64 import b64url_decode


@given(st.binary(max_size=400))
def test_it_decodes_what_the_standard_encoder_wrote(data: bytes) -> None:
    assert b64url_decode(base64.urlsafe_b64encode(data).rstrip(b"=")) == data


@given(st.binary(min_size=1, max_size=60), st.integers(min_value=0, max_value=100))
def test_any_other_byte_anywhere_is_refused(data: bytes, where: int) -> None:
    encoded = base64.urlsafe_b64encode(data).rstrip(b"=")
    for stray in (b"=", b"+", b"/", b" ", b"\n", b".", b"\x00", b"\xc3\xa9"):
        at = where % (len(encoded) + 1)
        with pytest.raises(binascii.Error):
            b64url_decode(encoded[:at] + stray + encoded[at:])


@pytest.mark.parametrize("segment", [b"A", b"AAAAA", b"QUJD=", b"QQ==", b"QUI=", b"QUJD\n"])
def test_padding_and_impossible_lengths_are_refused(segment: bytes) -> None:
    with pytest.raises(binascii.Error):
        b64url_decode(segment)


def test_the_empty_segment_is_empty() -> None:
    assert b64url_decode(b"") == b""
