"""Shared test helpers: render X12 through the generator's writer and build expected records."""

from __future__ import annotations

import pathlib
from collections.abc import Sequence

from invrecon.fixtures.edi_files import render_x12, transaction
from invrecon.transforms.edi import RECORD_FIELDS, parse_edi

REPO = pathlib.Path(__file__).resolve().parents[3]
SAMPLES = REPO / ".." / "shared" / "edi-samples"
FIXTURES = REPO / "tests" / "edi_fixtures"

ENVELOPE = dict(sender="WMS", receiver="ERP", control=7, date="261130", time="2100")


def render(
    transactions: Sequence[Sequence[Sequence[str]]], *, gs_code: str = "IB", **delims: object
) -> bytes:
    """One interchange of the given (ST/SE-wrapped) transactions, as bytes."""
    return render_x12(list(transactions), gs_code=gs_code, **ENVELOPE, **delims).encode()


def tx(set_id: str, control: int, body: Sequence[Sequence[str]]) -> list[list[str]]:
    return transaction(set_id, control, body)


def record(**fields: object) -> dict:
    """An expected record: every field None unless given."""
    rec = dict.fromkeys(RECORD_FIELDS)
    rec.update(fields)
    return rec


def parse(data: bytes, file: str = "f.edi", **kw: object) -> list[dict]:
    return list(parse_edi(data, file=file, **kw))


def records(out: list[dict]) -> list[dict]:
    return [r for r in out if r["kind"] != "error"]


def errors(out: list[dict]) -> list[dict]:
    return [r for r in out if r["kind"] == "error"]


def codes(out: list[dict]) -> list[str]:
    return [r["code"] for r in errors(out)]


def ids(*pairs: str) -> list[dict[str, str]]:
    """ids("UP", "0123", "VN", "A1") -> [{"qualifier": "UP", "id": "0123"}, ...]."""
    return [{"qualifier": q, "id": v} for q, v in zip(pairs[::2], pairs[1::2])]
