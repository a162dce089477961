"""Shared test helpers: render X12 through the generator's writer, build expected records, load fixtures.

`BODY_846` / `BODY_856` are the synthetic world's feeds as `fixtures.edi_files` renders them;
`load` parses a hand-written fixture of tests/edi_fixtures; `transactions` gives the checked
Transactions of an X12 text, for calling a set mapper directly.
"""

from __future__ import annotations

import pathlib
from collections.abc import Sequence

from invrecon.fixtures.edi_files import render_x12, transaction
from invrecon.transforms.edi import RECORD_FIELDS, parse_edi
from invrecon.transforms.edi.decode import decode_chunks
from invrecon.transforms.edi.x12 import x12_batches
from invrecon.transforms.edi.x12_envelope import Transaction, walk

REPO = pathlib.Path(__file__).resolve().parents[3]
SAMPLES = REPO / ".." / "shared" / "edi-samples"
FIXTURES = REPO / "tests" / "edi_fixtures"

ENVELOPE = dict(sender="WMS", receiver="ERP", control=7, date="261130", time="2100")
CONTROL_1 = {"interchange": "000000007", "group": "7", "transaction": "0001"}
CONTROL_2 = {"interchange": "000000007", "group": "7", "transaction": "0002"}


def segments(text: str) -> list[list[str]]:
    """X12 segments written one a line, elements between `*`, as the lists of elements `tx` takes."""
    return [line.strip().split("*") for line in text.strip().splitlines()]


BODY_846 = segments("""
    BIA*00*MM*INV-20261130*20261130*2000
    N1*WH*Main DC*92*DC01
    LIN**UP*012345678905
    QTY*17*40*EA
    QTY*33*35*EA
    LIN**UK*10012345678902
    QTY*17*3*CA
    CTT*2
""")
BODY_856 = segments("""
    BSN*00*SHP-1*20261130*1015
    HL*1**S
    DTM*011*20261130*0900
    N1*SF*Main DC*92*DC01
    N1*ST*Store 7*92*S007
    HL*2*1*O
    PRF*PO-9
    HL*3*2*I
    LIN**UP*012345678905
    SN1**12*EA
    HL*4*2*I
    LIN**UK*10012345678902
    SN1**2*CA
    CTT*2
""")


def render(
    transactions: Sequence[Sequence[Sequence[str]]], *, gs_code: str = "IB", **delims: object
) -> bytes:
    """One interchange of the given (ST/SE-wrapped) transactions, as bytes."""
    return render_x12(list(transactions), gs_code=gs_code, **ENVELOPE, **delims).encode()


def tx(set_id: str, control: int, body: Sequence[Sequence[str]]) -> list[list[str]]:
    return transaction(set_id, control, body)


def transactions(data: bytes) -> list[Transaction]:
    """The checked transactions of an X12 text, as `parse_edi` hands them to the set mappers."""
    return [ev for ev in walk(x12_batches(decode_chunks([data]))) if isinstance(ev, Transaction)]


def record(**fields: object) -> dict:
    """An expected record: every field None unless given."""
    rec = dict.fromkeys(RECORD_FIELDS)
    rec.update(fields)
    return rec


def parse(data: bytes, file: str = "f.edi", **kw: object) -> list[dict]:
    return list(parse_edi(data, file=file, **kw))


def load(name: str) -> list[dict]:
    """parse-edi's output for a hand-written fixture (tests/edi_fixtures), named as itself."""
    return parse((FIXTURES / name).read_bytes(), file=name)


def x12(interchange: int, **fields: object) -> dict:
    """The fields a fixture's X12 records share: its interchange number is its group number."""
    ctl = {"interchange": f"{interchange:09d}", "group": str(interchange), "transaction": "0001"}
    return {"standard": "x12", "control": ctl, **fields}


def edifact(interchange: str, message: str, **fields: object) -> dict:
    """The fields an EDIFACT message's records share."""
    ctl = {"interchange": interchange, "group": None, "transaction": message}
    return {"standard": "edifact", "control": ctl, **fields}


def expect(name: str, common: dict, *lines: dict) -> list[dict]:
    """The expected records of fixture `name`: the `common` fields and each line's own."""
    return [record(file=name, **common, **line) for line in lines]


def records(out: list[dict]) -> list[dict]:
    return [r for r in out if r["kind"] != "error"]


def errors(out: list[dict]) -> list[dict]:
    return [r for r in out if r["kind"] == "error"]


def codes(out: list[dict]) -> list[str]:
    return [r["code"] for r in errors(out)]


def ids(*pairs: str) -> list[dict[str, str]]:
    """ids("UP", "0123", "VN", "A1") -> [{"qualifier": "UP", "id": "0123"}, ...]."""
    return [{"qualifier": q, "id": v} for q, v in zip(pairs[::2], pairs[1::2])]


def item(qualifier: str, item_id: str, *more: str) -> dict:
    """The item fields of an expected record: `item_id` (the chosen id) and all the line's ids."""
    return dict(item_id=item_id, item_id_qualifier=qualifier, item_ids=ids(qualifier, item_id, *more))
