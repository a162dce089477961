"""Read EDI files into canonical records: the records `transforms.edi` parses, mapped to positions, in-transit and movements."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator

import fsspec
import polars as pl
import pyarrow as pa

from invrecon.schemas import EVENT_TYPES, IN_TRANSIT, MOVEMENT, POSITION
from invrecon.transforms.canonical import apply_uom, map_locations, map_skus, parse_timestamps, timestamp_problem
from invrecon.transforms.crosswalks import Crosswalks
from invrecon.transforms.edi import AckCollector, parse_edi_stream
from invrecon.transforms.edi.values import DEFAULT_QUALIFIERS
from invrecon.transforms.quarantine import quarantine_by_code, reject
from invrecon.transforms.readers.checks import reject_future, reject_negative, reject_quantities, reject_timestamps
from invrecon.transforms.readers.common import FileResult, SourceSpec, file_rejected, guarded, quarantine_table, to_arrow
from invrecon.transforms.readers.events import signed_quantities

__all__ = ["EDI_BATCH_RECORDS", "canonical_from_edi", "read_edi"]


def _locator(rec: dict) -> str:
    """`segment 12 (ISA 000000101 / GS 7 / ST 0001)`; `file` for a problem of the whole file (not_edi)."""
    c = rec.get("control") or {}
    parts = [f"segment {rec['segment']}" if rec.get("segment") is not None else "file"]
    ids = [f"{k[:3].upper() if k != 'transaction' else 'ST'} {c[k]}" for k in ("interchange", "group", "transaction") if c.get(k)]
    if ids:
        parts.append("(" + " / ".join(ids).replace("INT", "ISA").replace("GRO", "GS") + ")")
    return " ".join(parts)


# EDI records canonicalized at a time by `read_edi`.
EDI_BATCH_RECORDS = 50_000


def read_edi(uri: str, spec: SourceSpec, crosswalks: Crosswalks, *, acks: AckCollector | None = None) -> Iterator[FileResult]:
    """Read one EDI file into canonical records, streaming (`canonical_from_edi` per batch).

    The file is read in blocks (`transforms.edi.parse_edi_stream`) and its records are
    canonicalized EDI_BATCH_RECORDS at a time, so memory per file is one transaction (at most
    MAX_SEGMENTS_PER_TRANSACTION segments) and one batch, whatever the file's size.

    Args:
      acks: an `transforms.edi.AckCollector` to fill with the file's 997s in the same pass.
    """
    try:
        f = fsspec.open(uri, "rb").open()
    except OSError as e:
        yield file_rejected(spec, uri, "unreadable_file", f"{uri}: file unreadable: cannot open: {e}")
        return
    with f:
        records = parse_edi_stream(f, file=uri, qualifiers=dict(spec.qualifiers) or None, acks=acks)
        while batch := list(itertools.islice(records, EDI_BATCH_RECORDS)):
            yield guarded(spec, uri, lambda: [_locator(r) for r in batch], lambda: canonical_from_edi(batch, uri, spec, crosswalks))


def _edi_errors(errors: list[dict], uri: str) -> list[pl.DataFrame]:
    """Quarantine frames of the parser's error dicts, each with the parser's code."""
    if not errors:
        return []
    q = pl.DataFrame(
        {
            "_file": [uri] * len(errors),
            "_locator": [_locator(e) for e in errors],
            "_raw": [json.dumps(e, default=str) for e in errors],
            "_code": [str(e.get("code") or "edi_error") for e in errors],
            "_reason": [str(e.get("message") or "") for e in errors],
        }
    )
    return quarantine_by_code(q)


_EDI_STRINGS = ("_qty_raw", "qty_type", "c_location", "c_from", "c_to", "shipment_id", "event_type", "reference", "_when", "_expected", "_item")


def _edi_frame(recs: list[dict], uri: str) -> pl.DataFrame:
    """One row per extracted EDI record, its fields as text (`_rec` numbers the records)."""
    def text(v) -> str | None:
        return None if v is None else str(v)

    return pl.DataFrame(
        {
            "_rec": list(range(len(recs))),
            "_kind": [r["kind"] for r in recs],
            "_file": [uri] * len(recs),
            "_locator": [_locator(r) for r in recs],
            "_raw": [json.dumps(r, default=str) for r in recs],
            "_qty_raw": [text(r.get("qty")) for r in recs],
            "uom": [str(r.get("uom") or "EA") for r in recs],
            "qty_type": [text(r.get("qty_type")) for r in recs],
            "c_location": [text(r.get("location")) for r in recs],
            "c_from": [text(r.get("from_location")) for r in recs],
            "c_to": [text(r.get("to_location")) for r in recs],
            "shipment_id": [text(r.get("shipment_id")) for r in recs],
            "event_type": [text(r.get("event_type")) for r in recs],
            "reference": [text(r.get("reference") or r.get("shipment_id")) for r in recs],
            "_when": [text(r.get("as_of") or r.get("occurred_at") or r.get("shipped_at")) for r in recs],
            "_expected": [text(r.get("expected_at")) for r in recs],
            "_item": [text(r.get("item_id")) for r in recs],
        },
        schema_overrides={"_rec": pl.Int64, **{k: pl.String for k in _EDI_STRINGS}},
    )


def _edi_skus(df: pl.DataFrame, recs: list[dict], spec: SourceSpec, crosswalks: Crosswalks) -> pl.DataFrame:
    """Join each record's sku: the first of its item ids (in file order) the crosswalk knows."""
    # DESIGN.md §5: the parser's qualifier table (transforms.edi.values), then the source's overrides.
    qualifiers = {**DEFAULT_QUALIFIERS, **dict(spec.qualifiers)}
    cand_rows = []
    for i, r in enumerate(recs):
        ids = r.get("item_ids") or ([{"qualifier": r.get("item_id_qualifier"), "id": r.get("item_id")}] if r.get("item_id") else [])
        for j, it in enumerate(ids):
            id_type = qualifiers.get(str((it or {}).get("qualifier") or "").upper())
            if id_type and it.get("id"):
                cand_rows.append((i, j, id_type, str(it["id"])))
    cands = pl.DataFrame(cand_rows, schema={"_rec": pl.Int64, "_order": pl.Int64, "_id_type": pl.String, "_cid": pl.String}, orient="row")
    tmp = cands.with_columns(pl.lit(df["_file"][0] if df.height else "").alias("_file"), pl.lit("").alias("_locator"), pl.lit("").alias("_raw"))
    mapped, _ = map_skus(tmp, crosswalks, id_col="_cid", type_col="_id_type")
    best = mapped.sort("_rec", "_order").unique("_rec", keep="first").select("_rec", "sku", "units_per_id")
    return df.join(best, on="_rec", how="left", maintain_order="left")


def canonical_from_edi(records: list[dict], uri: str, spec: SourceSpec, crosswalks: Crosswalks) -> FileResult:
    """Map the dicts of `transforms.edi.parse_edi` to canonical records of the source's system.

    Each record keeps all its item ids; the first (in file order) that the crosswalk knows wins.
    Parser errors become quarantine rows with the parser's code. Locations are in the source
    system's codes. A quantity must come to whole eaches (`bad_quantity`); a movement's is a
    magnitude unless it is an adjustment.
    """
    recs = [r for r in records if r.get("kind") in ("position", "in_transit", "movement")]
    rejected = _edi_errors([r for r in records if r.get("kind") == "error"], uri)
    result = FileResult(read=len(records))
    if recs:
        df = _edi_skus(_edi_frame(recs, uri), recs, spec, crosswalks)
        reason = pl.format("item {}: none of the record's item ids is in the sku crosswalk", pl.col("_item").fill_null("(none)"))
        df = reject(df, pl.col("sku").is_null(), "unmapped_sku", reason, rejected)
        df = df.with_columns(
            parse_timestamps(pl.col("_when"), timezone=spec.timezone).alias("_ts"),
            parse_timestamps(pl.col("_expected"), timezone=spec.timezone).alias("expected_at"),
            pl.lit(spec.system).alias("_loc_system"),
        )
        df = reject_quantities(df, [("_qty_raw", "qty", True)], unit=None, rejected=rejected)
        magnitude = (pl.col("_kind") == "movement") & (pl.col("event_type") != "adjustment").fill_null(True)
        df = reject_negative(df, "_qty_raw", "qty", signed=~magnitude, rejected=rejected)
        future = pl.col("_kind") == "movement"
        df = reject_future(df, "_ts", "_when", "date", spec=spec, rejected=rejected, only=future)
        df = reject_timestamps(df, "_ts", "_when", "date", rejected=rejected, unparsed="the record has no usable date / time")
        expected = timestamp_problem(pl.col("expected_at"), pl.col("_expected"), field="expected date")
        df = reject(df, pl.col("_expected").is_not_null() & expected.is_not_null(), "bad_timestamp", expected, rejected)
        df, rej = apply_uom(df, crosswalks, uom_col="uom")
        rejected += rej
        df = reject_quantities(df, [("_qty_raw", "qty", True)], unit="uom", rejected=rejected).rename({"_e_qty_raw": "_eaches"})
        lineage = [pl.lit(spec.name).alias("source"), pl.col("_file").alias("file"), pl.col("_locator").alias("locator")]
        result.positions = _edi_positions(df.filter(pl.col("_kind") == "position"), spec, crosswalks, lineage, rejected)
        result.in_transit = _edi_in_transit(df.filter(pl.col("_kind") == "in_transit"), crosswalks, lineage, rejected)
        result.movements = _edi_movements(df.filter(pl.col("_kind") == "movement"), spec, crosswalks, lineage, rejected)
    result.quarantine = quarantine_table(rejected, spec.name)
    return result


def _edi_positions(pos: pl.DataFrame, spec: SourceSpec, crosswalks: Crosswalks, lineage: list[pl.Expr], rejected: list[pl.DataFrame]) -> pa.Table | None:
    if not pos.height:
        return None
    pos, rej = map_locations(pos, crosswalks, col="c_location", system_col="_loc_system", out="location")
    rejected += rej
    reason = "the position has no warehouse location (N1 WH / SDQ / SCH / LOC)"
    pos = reject(pos, pl.col("location").is_null(), "missing_field", reason, rejected)
    is_avail = (pl.col("qty_type") == "available").fill_null(False)
    pos = pos.with_columns(
        pl.lit(spec.system).alias("system"),
        pl.col("_ts").alias("as_of"),
        pl.when(~is_avail).then(pl.col("_eaches")).alias("on_hand"),
        pl.lit(None, dtype=pl.Int64).alias("reserved"),
        pl.when(is_avail).then(pl.col("_eaches")).alias("available"),
        pl.col("uom").alias("uom_source"),
        pl.lit(None, dtype=pl.Float64).alias("unit_cost"),
        *lineage,
    )
    return to_arrow(pos, POSITION)


def _edi_in_transit(its: pl.DataFrame, crosswalks: Crosswalks, lineage: list[pl.Expr], rejected: list[pl.DataFrame]) -> pa.Table | None:
    if not its.height:
        return None
    its, rej = map_locations(its, crosswalks, col="c_from", system_col="_loc_system", out="from_location")
    rejected += rej
    its, rej = map_locations(its, crosswalks, col="c_to", system_col="_loc_system", out="to_location")
    rejected += rej
    its = reject(its, pl.col("shipment_id").is_null(), "missing_field", "the shipment has no shipment id (BSN02 / BGM)", rejected)
    its = its.with_columns(pl.col("_eaches").alias("qty"), pl.col("_ts").alias("shipped_at"), *lineage)
    return to_arrow(its, IN_TRANSIT)


def _edi_movements(mv: pl.DataFrame, spec: SourceSpec, crosswalks: Crosswalks, lineage: list[pl.Expr], rejected: list[pl.DataFrame]) -> pa.Table | None:
    if not mv.height:
        return None
    mv, rej = map_locations(mv, crosswalks, col="c_location", system_col="_loc_system", out="location")
    rejected += rej
    bad = pl.col("location").is_null() | ~pl.col("event_type").is_in(list(EVENT_TYPES))
    mv = reject(mv, bad, "missing_field", "the movement has no location or no known event type", rejected)
    mv = mv.with_columns(
        pl.format("{}#{}", pl.col("_file"), pl.col("_locator")).alias("event_id"),
        pl.lit(spec.system).alias("system"),
        *signed_quantities(pl.col("_eaches")),
        pl.col("_ts").alias("occurred_at"),
        pl.lit(None, dtype=pl.String).alias("counterparty_location"),
        *lineage,
    )
    return to_arrow(mv, MOVEMENT)
