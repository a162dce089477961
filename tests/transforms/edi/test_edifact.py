"""The EDIFACT tokenizer and envelopes: UNA delimiters, release characters, UNB/UNG/UNH ... UNT/UNE/UNZ checks."""

from __future__ import annotations

import pytest

from invrecon.transforms.edi.edifact import (
    DEFAULT_DELIMITERS,
    EdifactDelimiters,
    Message,
    component,
    edifact_batches,
    split_segment,
    walk,
)
from invrecon.transforms.edi.errors import Problem
from tests.transforms.edi.helpers import codes, parse, records

MSG = "UNH+1+DESADV:D:96A:UN'BGM+351+D'LIN+1++123:EN'QTY+12:4'UNT+5+1'"


def _walk(text: str) -> list:
    return list(walk(edifact_batches([text])))


def _problems(text: str) -> list[tuple[str, int | None, str]]:
    return [(p.code, p.segment, p.message) for p in _walk(text) if isinstance(p, Problem)]


def test_edifact_release_character_and_components():
    assert split_segment("FTX+A?+B+x?:y:z", DEFAULT_DELIMITERS) == [["FTX"], ["A+B"], ["x:y", "z"]]


def test_component_is_empty_when_absent():
    seg = [["QTY"], ["12", "4", "PCE"]]
    assert component(seg, 1, 2) == "PCE" and component(seg, 1) == "12"
    assert component(seg, 1, 3) == "" and component(seg, 5) == ""


def test_una_sets_the_delimiters_of_its_interchange_only():
    """UNA|^.\\ ! : the next interchange is back on the defaults."""
    text = "UNA|^.\\ !UNB^UNOA|3^A^B^260101|1200^1!UNZ^0^1!UNB+UNOA:3+A+B+260101:1200+2'UNZ+0+2'"
    out = list(edifact_batches([text]))
    assert out[0].delimiters == EdifactDelimiters("|", "^", ".", "\\", " ", "!")
    assert out[1] == [[["UNB"], ["UNOA", "3"], ["A"], ["B"], ["260101", "1200"], ["1"]], [["UNZ"], ["0"], ["1"]]]
    assert out[2][0][4] == ["260101", "1200"]


def test_edifact_batches_report_junk_and_a_bad_una():
    (junk,) = [p for p in edifact_batches(["not edifact"]) if isinstance(p, Problem)]
    assert junk.code == "junk"
    (bad, batch) = edifact_batches(["UNA::.? 'UNB+UNOA:3+A+B+260101:1200+1'"])  # component = element
    assert isinstance(bad, Problem) and bad.code == "bad_una"
    assert batch == [[["UNB"], ["UNOA", "3"], ["A"], ["B"], ["260101", "1200"], ["1"]]]  # read with the defaults


def test_walk_hands_out_checked_messages_numbered_from_the_unb():
    (msg,) = _walk(f"UNB+UNOA:3+A+B+260101:1200+9'{MSG}UNZ+1+9'")
    assert isinstance(msg, Message) and (msg.type, msg.start) == ("DESADV", 2)
    assert msg.control == {"interchange": "9", "group": None, "transaction": "1"}
    assert [s[0][0] for s in msg.body] == ["BGM", "LIN", "QTY"]


def test_edifact_unt_count_and_duplicate_reference():
    msg = "UNH+1+DESADV:D:96A:UN'BGM+351+D'LIN+1++123:EN'QTY+12:4'UNT+5+1'"
    data = f"UNB+UNOA:3+A+B+260101:1200+9'{msg}{msg}UNZ+2+9'".encode()
    out = parse(data)
    assert codes(out) == ["duplicate_control"] and len(records(out)) == 2
    out = parse(data.replace(b"UNT+5+1'", b"UNT+7+1'", 1))
    assert codes(out) == ["count_mismatch", "duplicate_control"] and len(records(out)) == 1


@pytest.mark.parametrize("trailer, want", [
    ("UNE+2+5'UNZ+1+9'", [("count_mismatch", 8, "UNE01 is '2' but the group has 1 messages")]),
    ("UNE+1+6'UNZ+1+9'", [("control_mismatch", 8, "UNE02 '6' does not match UNG05 '5'")]),
    ("UNE+1+5'UNZ+3+9'", [("count_mismatch", 9, "UNZ01 is '3' but interchange '9' has 1 messages/groups")]),
    ("UNE+1+5'UNZ+1+8'", [("control_mismatch", 9, "UNZ02 '8' does not match UNB05 '9'")]),
    ("UNZ+1+9'", [("missing_trailer", 2, "UNG at segment 2 has no UNE (UNZ at segment 8)")]),
], ids=["une-count", "une-control", "unz-count", "unz-control", "no-une"])
def test_group_and_interchange_trailers_are_checked(trailer, want):
    """UNB = 1, UNG = 2, the message 3 to 7, UNE = 8, UNZ = 9."""
    assert _problems(f"UNB+UNOA:3+A+B+260101:1200+9'UNG+DESADV+A+B+260101:1200+5'{MSG}{trailer}") == want


def test_trailers_without_their_headers_are_missing_header():
    assert _problems("UNB+UNOA:3+A+B+260101:1200+9'UNE+0+5'UNZ+0+9'") == [("missing_header", 2, "UNE at segment 2 has no UNG")]
    # a UNZ with no UNB before it (the tokenizer calls such text junk; the walker is told it directly)
    (problem,) = walk([[[["UNZ"], ["0"], ["9"]]]])
    assert (problem.code, problem.segment, problem.message) == ("missing_header", 1, "UNZ at segment 1 has no UNB")
