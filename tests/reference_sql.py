"""An independent end-to-end reconciliation (DESIGN.md §4-§6) in plain DuckDB SQL, from the raw inputs.

The pipeline's answer is checked against this one row for row (`tests/test_differential.py`) and
timed beside it (`python -m bench batch`). Nothing of the pipeline's code is used, with one
exception: EDI files go through the project's EDI parser (`transforms.edi.parse_edi_stream`, what
`invrecon parse-edi` prints), since SQL cannot tokenize X12 / EDIFACT. Everything after that parse
is SQL here, and every other input is read by DuckDB itself:

- the config (YAML) and the column mappings it names (`mappings/*.yaml`);
- ERP CSV extracts, store Parquet, commerce JSON Lines through their mappings: ids through the
  sku crosswalk (GTIN-8/12/13/14 to GTIN-14 with the check digit verified, `units_per_id`, the
  case pack = the largest `units_per_id` of a sku), locations through the per-system location
  crosswalk, units to eaches (EA-like codes count the identified item, CA/CS/PK-like codes the
  case, DZ 12 ...), timestamps without an offset in the config's time zone; a quantity must come
  to whole eaches; a row identical to another in every source column is a `duplicate_row`;
- stock events (JSON Lines): required fields, event types, signs, de-duplication by `event_id`
  (the first occurrence in file, line order counts);
- the row-level expectations of the data-quality suites (not null, between, in set, regex,
  unique) drop the rows they fail, as the gate does; table-level ones do not change figures;
- roll to the cut-off (§6.1: forward with counts resetting, backward ignoring counts, reserved
  with reservation / release), open in-transit (§5: shipped by T, no receipt or transfer_in whose
  reference is the shipment id by T), classification (§6.3-4, `timing` only when the rolled
  figures agree exactly and the raw ones differ beyond the tolerance of R's raw figure), value
  (§6.5) and ATP / oversell risk (§6.6). Aging (§6.7) needs earlier runs and is not covered.

Deliberate gaps: local (or `file://`) paths only; `future_event` is not applied (DESIGN names no
config key for its skew); a local time that does not exist or is ambiguous at a DST change is
read as DuckDB reads it; whitespace around a value is trimmed fully only in ids, locations and
units; EDI qualifiers map as DESIGN §5 lists them (plus the source's own `qualifiers`), where the
pipeline also knows UI, SRV and VC.

Readings of DESIGN.md where the pipeline differs today (no generated world has such input, so the
differential test does not see them): a quantity is judged after conversion to eaches (12.5 DZ
is 150 EA; the pipeline wants a whole number as written); a row identical to another of its
source in every source column is a `duplicate_row` (the pipeline adds it up); `timing` only when
the rolled figures agree exactly (the pipeline change lands separately). Where DESIGN is silent
this follows README "How a run works": rows of one system, sku, location and as-of add up, the
newest as-of wins; a count includes everything at its instant; an `in_transit` delta matches the
open quantity into, out of, or into and out of the location.

Memory: DuckDB is held to `default_memory_limit()` (half the machine, at most 8 GB) and spills
beyond it; 10M keys (17M positions, 9.5M events) take ~2.5 min and ~8 GB here.

Run alone (prints the row count, the classes and the wall time):

    python -m tests.reference_sql --config fixtures/world/config.yaml --run-date 2026-11-30 [--out FILE.parquet]
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import glob
import importlib.resources
import json
import os
import pathlib
import sys
import tempfile
import time
import zoneinfo

import duckdb
import pyarrow as pa
import yaml

__all__ = ["COLUMNS", "KEY_COLUMNS", "RefConfig", "load_config", "main", "reference_discrepancies"]

# Columns of the result, as the `discrepancies` table names them.
COLUMNS = ("sku", "location", "other_system", "class", "record_qty", "other_qty", "delta", "raw_delta", "tolerance",
           "explained_qty", "unit_cost", "value_delta")
# The columns a differential check compares exactly (tolerance and money are floats).
KEY_COLUMNS = COLUMNS[:8] + ("explained_qty",)

# DESIGN.md §5: unit codes.
UOM_EACH = ("EA", "EACH", "PC", "PCE", "UN", "UNIT", "C62", "EU", "EN", "PCS", "")
UOM_CASE = ("CA", "CS", "CT", "CTN", "PK", "PKG", "BX", "CASE", "PACK")
UOM_FIXED = {"DZ": 12, "DZN": 12, "GR": 144, "GRO": 144, "PR": 2, "PAI": 2}
# DESIGN.md §5: EDI qualifier -> id type, plus UC: the qualifier the parser gives the bare U.P.C.
# case codes of W01/W07/W12/W19 (DESIGN.md §3 lets the parser name them).
EDI_QUALIFIERS = {"UP": "gtin", "UK": "gtin", "EN": "gtin", "UA": "gtin", "UC": "gtin", "VN": "vendor_part", "VP": "vendor_part",
                  "VA": "vendor_part", "BP": "buyer_part", "IN": "buyer_part", "CB": "buyer_part", "SK": "sku"}
EVENT_SIGN = {"receipt": 1, "return": 1, "transfer_in": 1, "sale": -1, "shipment": -1, "transfer_out": -1,
              "adjustment": 1, "count": 1, "reservation": 0, "release": 0}
RESERVED_SIGN = {"reservation": 1, "release": -1}
TOLERANCE_FIELDS = {"abc_class": "abc_class", "location_type": "location_type", "category": "category",
                    "system": "other_system", "location": "location", "sku": "sku"}
SUITES = {"positions": "position.json", "movements": "movement.json", "in_transit": "in_transit.json"}


class ReferenceError_(ValueError):
    """The inputs cannot be reconciled (a config or crosswalk problem)."""


# --------------------------------------------------------------------------- config

@dataclasses.dataclass(frozen=True)
class RefSource:
    name: str
    kind: str
    system: str | None
    format: str | None
    path: str
    columns: dict[str, str]  # source column -> canonical field
    sku_id_type: str
    location_system: str | None
    qualifiers: dict[str, str]
    suite: str | None


@dataclasses.dataclass(frozen=True)
class RefConfig:
    timezone: str
    record_system: str
    sku_crosswalk: str
    location_crosswalk: str
    items: str
    sources: tuple[RefSource, ...]
    tolerances: tuple[tuple[dict[str, str], float, float], ...]
    max_as_of_lag_hours: float


def _local(path: str) -> str:
    if path.startswith("file://"):
        return path[len("file://"):]
    if "://" in path:
        raise ReferenceError_(f"{path}: the reference reads local paths only")
    return path


def load_config(path: str | os.PathLike) -> RefConfig:
    """Read the config and its mappings (YAML, paths relative to the config file)."""
    path = _local(str(path))
    base = pathlib.Path(path).parent
    doc = yaml.safe_load(pathlib.Path(path).read_text())

    def rel(p: str) -> str:
        p = _local(str(p))
        return p if os.path.isabs(p) else str(base / p)

    sources = []
    for s in doc["sources"]:
        columns, sku_type, loc_system = {}, "sku", None
        if s.get("mapping"):
            m = yaml.safe_load(pathlib.Path(rel(s["mapping"])).read_text())
            columns = {str(k): str(v) for k, v in m["columns"].items()}
            ids = m.get("id_types") or {}
            sku_type, loc_system = str(ids.get("sku", "sku")), ids.get("location")
        sources.append(RefSource(
            name=s["name"], kind=s["kind"], system=s.get("system"), format=s.get("format"), path=rel(s["path"]),
            columns=columns, sku_id_type=sku_type, location_system=loc_system,
            qualifiers={str(k): str(v) for k, v in (s.get("qualifiers") or {}).items()},
            suite=rel(s["expectations"]) if s.get("expectations") else None,
        ))
    tolerances = tuple(
        ({str(k): str(v) for k, v in (t.get("match") or {}).items()}, float(t.get("abs", 0)), float(t.get("pct", 0)))
        for t in (doc.get("tolerances") or [{"match": {}, "abs": 0, "pct": 0}])
    )
    crosswalks = doc["crosswalks"]
    return RefConfig(
        timezone=doc["timezone"], record_system=doc["record_system"], sku_crosswalk=rel(crosswalks["sku"]),
        location_crosswalk=rel(crosswalks["location"]), items=rel(doc["items"]), sources=tuple(sources),
        tolerances=tolerances, max_as_of_lag_hours=float((doc.get("quality") or {}).get("max_as_of_lag_hours", 36)),
    )


def cutoff_utc(run_date: dt.date, timezone: str) -> dt.datetime:
    """D 23:59:59.999 in the config's time zone, in UTC (DESIGN.md §6)."""
    local = dt.datetime.combine(run_date, dt.time(23, 59, 59, 999000), zoneinfo.ZoneInfo(timezone))
    return local.astimezone(dt.UTC)


# --------------------------------------------------------------------------- SQL helpers

def q(value: object) -> str:
    """A SQL literal."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, (int, float)):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"


def ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _in(values) -> str:
    return "(" + ", ".join(q(v) for v in values) + ")"


_WS = "' ' || chr(9) || chr(10) || chr(11) || chr(12) || chr(13)"
MACROS = f"""
CREATE OR REPLACE TEMP MACRO clean(v) AS trim(CAST(v AS VARCHAR), {_WS});
CREATE OR REPLACE TEMP MACRO gtin14(v) AS (
    CASE WHEN regexp_full_match(clean(v), '[0-9]{{8}}|[0-9]{{12,14}}')
          AND (10 - list_sum(list_transform(range(1, 14),
                   lambda k: CAST(substr(lpad(clean(v), 14, '0'), k, 1) AS INTEGER) * CASE WHEN k % 2 = 1 THEN 3 ELSE 1 END)) % 10) % 10
              = CAST(substr(lpad(clean(v), 14, '0'), 14, 1) AS INTEGER)
         THEN lpad(clean(v), 14, '0') END);
CREATE OR REPLACE TEMP MACRO id_norm(id_type, v) AS CASE WHEN id_type = 'gtin' THEN gtin14(v) ELSE clean(v) END;
CREATE OR REPLACE TEMP MACRO uom_factor(u, units_per_id, case_pack) AS (
    CASE WHEN u IN {_in(UOM_EACH)} THEN units_per_id
         WHEN u IN {_in(UOM_CASE)} THEN CASE WHEN units_per_id > 1 THEN units_per_id ELSE case_pack END
         {" ".join(f"WHEN u = {q(k)} THEN {v} * units_per_id" for k, v in UOM_FIXED.items())}
    END);  -- u: upper(clean(unit code))
CREATE OR REPLACE TEMP MACRO num(v) AS TRY_CAST(CAST(v AS VARCHAR) AS DOUBLE);  -- the cast ignores surrounding blanks
CREATE OR REPLACE TEMP MACRO whole(x) AS (x IS NOT NULL AND isfinite(x) AND x = round(x));
CREATE OR REPLACE TEMP MACRO blank(v) AS (v IS NULL OR trim(CAST(v AS VARCHAR)) = '');
-- A unit code as the unit sets spell it (the common clean codes skip the trimming).
CREATE OR REPLACE TEMP MACRO uom_code(u) AS CASE WHEN u IN {_in(UOM_EACH + UOM_CASE + tuple(UOM_FIXED))} THEN u ELSE upper(clean(u)) END;
"""


def _ts_macro(timezone: str) -> str:
    # An ISO 8601 text with an offset is that instant; without one it is local time in the zone.
    return f"""
CREATE OR REPLACE TEMP MACRO parse_ts(s) AS (
    CASE WHEN regexp_matches(s, '(Z|[+-][0-9]{{2}}:?[0-9]{{2}})\\s*$') THEN TRY_CAST(s AS TIMESTAMPTZ)
         ELSE timezone({q(timezone)}, TRY_CAST(s AS TIMESTAMP)) END);
"""


# --------------------------------------------------------------------------- the reconciliation

class _Reference:
    def __init__(self, con: duckdb.DuckDBPyConnection, cfg: RefConfig, run_date: dt.date, workdir: str):
        self.con, self.cfg, self.run_date, self.workdir = con, cfg, run_date, workdir
        self.T = cutoff_utc(run_date, cfg.timezone)
        self.Tq = f"TIMESTAMPTZ {q(self.T.isoformat())}"

    def sql(self, text: str) -> None:
        self.con.execute(text)

    def id_lookup(self, name: str, pairs: str) -> None:
        """Table `name` (id_type, raw, sku, units_per_id) of the distinct (id_type, raw id) of `pairs` that map.

        Each distinct id is normalized (GTIN-14 with its check digit) and looked up once.
        """
        self.sql(f"""
        CREATE OR REPLACE TEMP TABLE {name} AS
        WITH ids AS (SELECT DISTINCT id_type, raw FROM ({pairs}) WHERE raw IS NOT NULL),
        normalized AS (SELECT id_type, raw, id_norm(id_type, raw) AS norm FROM ids)
        SELECT n.id_type, n.raw, x.sku, x.units_per_id
        FROM normalized n JOIN xw x ON x.id_type = n.id_type AND x.id_value = n.norm""")

    def loc_lookup(self, name: str, pairs: str) -> None:
        """Table `name` (system, raw, location) of the distinct (system, raw location code) of `pairs` that map."""
        self.sql(f"""
        CREATE OR REPLACE TEMP TABLE {name} AS
        SELECT p.system, p.raw, l.location
        FROM (SELECT DISTINCT system, raw FROM ({pairs}) WHERE raw IS NOT NULL) p
        JOIN loc_xw l ON l.system = p.system AND l.source_location = clean(p.raw)""")

    def drop(self, *tables: str) -> None:
        """Forget intermediate tables once used (10M keys: GBs)."""
        for name in tables:
            self.sql(f"DROP TABLE IF EXISTS {name}")

    def files(self, source: RefSource) -> list[str]:
        return sorted(p for p in glob.glob(source.path.replace("{run_date}", self.run_date.isoformat())) if os.path.isfile(p))

    # ---- reference data
    def load_reference_data(self) -> None:
        cfg = self.cfg
        self.sql(f"""
        CREATE OR REPLACE TEMP TABLE xw_rows AS
        SELECT clean(id_type) AS id_type, id_norm(clean(id_type), id_value) AS id_value, clean(id_value) AS raw_value,
               clean(sku) AS sku, CASE WHEN blank(units_per_id) THEN 1 ELSE TRY_CAST(clean(units_per_id) AS BIGINT) END AS units_per_id
        FROM read_csv({q(cfg.sku_crosswalk)}, header = true, all_varchar = true, delim = ',', quote = '"', escape = '"')""")
        bad = self.con.execute("SELECT id_type, raw_value FROM xw_rows WHERE id_value IS NULL OR sku IS NULL OR sku = '' "
                               "OR units_per_id IS NULL OR units_per_id <= 0 LIMIT 1").fetchall()
        if bad:
            raise ReferenceError_(f"{cfg.sku_crosswalk}: unusable row {bad[0]}")
        twice = self.con.execute("SELECT id_type, id_value FROM xw_rows GROUP BY ALL HAVING count(DISTINCT (sku, units_per_id)) > 1 LIMIT 1").fetchall()
        if twice:
            raise ReferenceError_(f"{cfg.sku_crosswalk}: {twice[0]} is mapped twice")
        self.sql("CREATE OR REPLACE TEMP TABLE xw AS SELECT DISTINCT id_type, id_value, sku, units_per_id FROM xw_rows")
        self.sql("CREATE OR REPLACE TEMP TABLE packs AS SELECT sku, max(units_per_id) AS case_pack FROM xw GROUP BY sku")
        self.sql(f"""
        CREATE OR REPLACE TEMP TABLE loc_rows AS
        SELECT row_number() OVER () AS n, * FROM (
            SELECT clean(system) AS system, clean(source_location) AS source_location, clean(location) AS location,
                   clean(location_type) AS location_type
            FROM read_csv({q(cfg.location_crosswalk)}, header = true, all_varchar = true, delim = ',', quote = '"', escape = '"'))""")
        twice = self.con.execute("SELECT system, source_location FROM loc_rows GROUP BY ALL HAVING count(DISTINCT location) > 1 LIMIT 1").fetchall()
        if twice:
            raise ReferenceError_(f"{cfg.location_crosswalk}: {twice[0]} is mapped twice")
        self.sql("CREATE OR REPLACE TEMP TABLE loc_xw AS SELECT DISTINCT system, source_location, location FROM loc_rows")
        self.sql("CREATE OR REPLACE TEMP TABLE loc_types AS SELECT location, arg_min(location_type, n) AS location_type FROM loc_rows GROUP BY location")
        cols = {r[0] for r in self.con.execute(f"DESCRIBE SELECT * FROM read_csv({q(cfg.items)}, header = true, all_varchar = true)").fetchall()}

        def opt(name: str, expr: str, default: str = "NULL") -> str:
            return expr.format(c=ident(name)) if name in cols else default

        self.sql(f"""
        CREATE OR REPLACE TEMP TABLE items AS
        SELECT clean(sku) AS sku,
               {opt("abc_class", "nullif(clean({c}), '')")} AS abc_class,
               {opt("category", "nullif(clean({c}), '')")} AS category,
               {opt("unit_cost", "num({c})")} AS unit_cost,
               {opt("currency", "nullif(clean({c}), '')")} AS currency,
               {opt("safety_stock", "coalesce(TRY_CAST(clean({c}) AS BIGINT), 0)", "0")} AS safety_stock
        FROM read_csv({q(cfg.items)}, header = true, all_varchar = true, delim = ',', quote = '"', escape = '"')""")

    # ---- tabular sources (positions, availability)
    def _file_columns(self, source: RefSource, path: str) -> dict[str, str] | None:
        """Column name -> DuckDB type of one file, or None when DuckDB cannot read it."""
        try:
            if source.format == "csv":
                rows = self.con.execute(f"DESCRIBE SELECT * FROM {self._csv(path)}").fetchall()
            elif source.format == "parquet":
                rows = self.con.execute(f"DESCRIBE SELECT * FROM read_parquet({q(path)})").fetchall()
            elif source.format == "jsonl":
                keys = self.con.execute(
                    f"SELECT DISTINCT unnest(json_keys(json)) FROM {self._jsonl(path)} WHERE json_type(json) = 'OBJECT'"
                ).fetchall()
                rows = [(k[0], "JSON") for k in keys]
            else:
                return None
        except duckdb.Error:
            return None
        return {r[0]: r[1] for r in rows}

    @staticmethod
    def _csv(path: str) -> str:
        # A row with the wrong number of fields is malformed: ignore_errors skips it.
        return (f"read_csv({q(path)}, header = true, all_varchar = true, delim = ',', quote = '\"', escape = '\"', "
                "ignore_errors = true, null_padding = false)")

    @staticmethod
    def _jsonl(path: str) -> str:
        return f"read_json_objects({q(path)}, format = 'newline_delimited', ignore_errors = true)"

    def _tabular_select(self, source: RefSource, path: str, columns: dict[str, str]) -> str:
        by_field = {dst: src for src, dst in source.columns.items()}
        if source.format == "jsonl":
            def col(name: str) -> str:
                return f"json_extract_string(json, {q('$.' + json.dumps(name))})"
            frm = f"{self._jsonl(path)} WHERE json_type(json) = 'OBJECT'"
        else:
            def col(name: str) -> str:
                return ident(name)
            frm = self._csv(path) if source.format == "csv" else f"read_parquet({q(path)})"

        def field(name: str) -> str:
            return f"CAST({col(by_field[name])} AS VARCHAR)" if name in by_field else "NULL::VARCHAR"

        as_of = "NULL::TIMESTAMPTZ"
        if "as_of" in by_field:
            kind = columns.get(by_field["as_of"], "VARCHAR").upper()
            c = col(by_field["as_of"])
            if kind.startswith("TIMESTAMP WITH TIME ZONE"):
                as_of = f"CAST({c} AS TIMESTAMPTZ)"
            elif kind.startswith("TIMESTAMP"):
                as_of = f"timezone({q(self.cfg.timezone)}, CAST({c} AS TIMESTAMP))"
            elif kind == "DATE":
                as_of = f"timezone({q(self.cfg.timezone)}, CAST({c} AS TIMESTAMP))"
            else:
                as_of = f"parse_ts({c})"
        # Identity of the whole source row (every column): its 64-bit hash, with the mapped fields beside it.
        row = "hash(" + ", ".join(f"{q(c)}, CAST({col(c)} AS VARCHAR)" for c in sorted(columns)) + ")"
        return f"""
        SELECT {q(source.name)} AS source, {q(source.system)} AS system, {q(source.kind)} AS kind,
               {q(source.sku_id_type)} AS id_type, {q(source.location_system or source.system)} AS loc_system,
               {q(path)} AS file, {row} AS src_row,
               {field("sku")} AS c_sku, {field("location")} AS c_location, {field("on_hand")} AS c_on_hand,
               {field("reserved")} AS c_reserved, {field("available")} AS c_available, {field("uom_source")} AS c_uom,
               {field("unit_cost")} AS c_unit_cost, {as_of} AS as_of
        FROM {frm}"""

    def read_tabular(self) -> None:
        parts = []
        for source in self.cfg.sources:
            if source.kind not in ("positions", "availability"):
                continue
            for path in self.files(source):
                columns = self._file_columns(source, path)
                if columns is None:
                    continue  # unreadable_file
                if any(c not in columns for c in source.columns):
                    continue  # missing_column: every row of the file is quarantined
                parts.append(self._tabular_select(source, path, columns))
        empty = ("SELECT NULL::VARCHAR AS source, NULL::VARCHAR AS system, NULL::VARCHAR AS kind, NULL::VARCHAR AS id_type, "
                 "NULL::VARCHAR AS loc_system, NULL::VARCHAR AS file, NULL::UBIGINT AS src_row, NULL::VARCHAR AS c_sku, "
                 "NULL::VARCHAR AS c_location, NULL::VARCHAR AS c_on_hand, NULL::VARCHAR AS c_reserved, NULL::VARCHAR AS c_available, "
                 "NULL::VARCHAR AS c_uom, NULL::VARCHAR AS c_unit_cost, NULL::TIMESTAMPTZ AS as_of WHERE FALSE")
        self.sql("CREATE OR REPLACE TEMP TABLE tab_raw AS " + " UNION ALL BY NAME ".join(parts or [empty]))
        # Canonical positions of the tabular sources (DESIGN.md §5).
        self.id_lookup("tab_ids", "SELECT id_type, c_sku AS raw FROM tab_raw")
        self.loc_lookup("tab_locs", "SELECT loc_system AS system, c_location AS raw FROM tab_raw")
        self.sql("""
        CREATE OR REPLACE TEMP TABLE tab_positions AS
        WITH dedup AS (
            -- a row identical to another of its source in every source column: duplicate_row
            SELECT * FROM tab_raw
            QUALIFY row_number() OVER (PARTITION BY source, src_row, c_sku, c_location, c_on_hand, c_reserved, c_available,
                                                    c_uom, c_unit_cost ORDER BY file) = 1),
        parsed AS (
            SELECT *, num(c_on_hand) AS n_on_hand, num(c_reserved) AS n_reserved, num(c_available) AS n_available,
                   num(c_unit_cost) AS n_cost, coalesce(c_uom, 'EA') AS uom_source
            FROM dedup),
        mapped AS (
            SELECT p.*, x.sku, l.location, uom_factor(uom_code(p.uom_source), x.units_per_id, k.case_pack) AS f
            FROM parsed p
            JOIN tab_ids x ON x.id_type = p.id_type AND x.raw = p.c_sku
            JOIN packs k ON k.sku = x.sku
            JOIN tab_locs l ON l.system = p.loc_system AND l.raw = p.c_location)
        SELECT source, system, kind, file, sku, location, as_of, uom_source, f AS units_per_uom,
               CAST(n_on_hand * f AS BIGINT) AS on_hand, CAST(n_reserved * f AS BIGINT) AS reserved,
               CAST(n_available * f AS BIGINT) AS available, n_cost / f AS unit_cost
        FROM mapped
        WHERE f IS NOT NULL AND as_of IS NOT NULL
          AND CASE WHEN kind = 'availability' THEN whole(n_available * f) ELSE whole(n_on_hand * f) END
          AND (blank(c_reserved) OR whole(n_reserved * f))
          AND (kind = 'availability' OR blank(c_available) OR whole(n_available * f))""")
        self.drop("tab_raw", "tab_ids", "tab_locs")

    # ---- EDI (parsed by the project's parser; everything after the parse is SQL)
    def read_edi(self) -> None:
        from invrecon.transforms.edi import parse_edi_stream

        path = os.path.join(self.workdir, "edi_records.jsonl")
        with open(path, "w", encoding="utf-8") as out:
            for source in self.cfg.sources:
                if source.kind != "edi":
                    continue
                for f in self.files(source):
                    with open(f, "rb") as fh:
                        for rec in parse_edi_stream(fh, file=f, qualifiers=source.qualifiers or None):
                            if rec.get("kind") in ("position", "in_transit", "movement"):
                                rec["_source"], rec["_system"] = source.name, source.system
                                out.write(json.dumps(rec, default=str) + "\n")
        quals = []
        for source in self.cfg.sources:
            if source.kind == "edi":
                for k, v in {**EDI_QUALIFIERS, **source.qualifiers}.items():
                    quals.append(f"({q(source.name)}, {q(k.upper())}, {q(v)})")
        self.sql("CREATE OR REPLACE TEMP TABLE edi_qualifiers (source VARCHAR, qualifier VARCHAR, id_type VARCHAR)")
        if quals:
            self.sql("INSERT INTO edi_qualifiers VALUES " + ", ".join(quals))
        fields = ["_source", "_system", "kind", "file", "segment", "qty", "uom", "qty_type", "location", "from_location",
                  "to_location", "shipment_id", "event_type", "reference", "as_of", "occurred_at", "shipped_at", "item_id",
                  "item_id_qualifier"]
        paths = "[" + ", ".join(q("$." + f) for f in fields) + "]"
        self.sql("CREATE OR REPLACE TEMP TABLE edi_json (json JSON)")
        if os.path.getsize(path):
            self.sql(f"INSERT INTO edi_json SELECT json FROM read_json_objects({q(path)}, format = 'newline_delimited')")
        self.sql(f"CREATE OR REPLACE TEMP TABLE edi_fields AS SELECT rowid, json, json_extract_string(json, {paths}) AS v FROM edi_json")
        self.sql("""
        CREATE OR REPLACE TEMP TABLE edi_raw AS
        SELECT rowid AS rid, v[1] AS source, v[2] AS system, v[3] AS kind, v[4] AS file, TRY_CAST(v[5] AS BIGINT) AS segment,
               v[6] AS c_qty, coalesce(nullif(v[7], ''), 'EA') AS uom, v[8] AS qty_type, v[9] AS c_location,
               v[10] AS c_from, v[11] AS c_to, v[12] AS shipment_id, v[13] AS event_type,
               coalesce(nullif(v[14], ''), v[12]) AS reference, parse_ts(coalesce(v[15], v[16], v[17])) AS ts,
               coalesce(
                   nullif(from_json(json -> '$.item_ids', '[{"qualifier": "VARCHAR", "id": "VARCHAR"}]'), []),
                   CASE WHEN v[18] IS NOT NULL AND v[18] <> '' THEN [{'qualifier': v[19], 'id': v[18]}] END) AS ids
        FROM edi_fields""")
        self.drop("edi_json", "edi_fields")
        # The first of a record's ids (in file order) that the crosswalk knows names its sku.
        self.sql("""
        CREATE OR REPLACE TEMP TABLE edi_cand AS
        SELECT c.rid, c.k, eq.id_type, c.id
        FROM (SELECT rid, source, k, ids[k].qualifier AS qualifier, ids[k].id AS id
              FROM (SELECT rid, source, ids, unnest(range(1, len(ids) + 1)) AS k FROM edi_raw WHERE ids IS NOT NULL)) c
        JOIN edi_qualifiers eq ON eq.source = c.source AND eq.qualifier = upper(clean(c.qualifier))""")
        self.id_lookup("edi_ids", "SELECT id_type, id AS raw FROM edi_cand")
        self.sql("""
        CREATE OR REPLACE TEMP TABLE edi_sku AS
        SELECT c.rid, arg_min(x.sku, c.k) AS sku, arg_min(x.units_per_id, c.k) AS units_per_id
        FROM edi_cand c JOIN edi_ids x ON x.id_type = c.id_type AND x.raw = c.id
        GROUP BY c.rid""")
        self.sql("""
        CREATE OR REPLACE TEMP TABLE edi_canon AS
        SELECT r.*, s.sku, uom_factor(uom_code(r.uom), s.units_per_id, k.case_pack) AS f, num(r.c_qty) AS n_qty
        FROM edi_raw r JOIN edi_sku s USING (rid) JOIN packs k ON k.sku = s.sku
        WHERE r.ts IS NOT NULL""")
        self.sql("""
        CREATE OR REPLACE TEMP TABLE edi_good AS
        SELECT *, CAST(n_qty * f AS BIGINT) AS eaches FROM edi_canon
        -- a position may be negative (a book that went below zero); a movement's or shipment's quantity is a
        -- magnitude, except an adjustment's
        WHERE f IS NOT NULL AND whole(n_qty * f) AND (kind = 'position' OR n_qty >= 0 OR event_type = 'adjustment')""")
        self.loc_lookup("edi_locs", "SELECT system, c_location AS raw FROM edi_good UNION ALL SELECT system, c_from FROM edi_good "
                                    "UNION ALL SELECT system, c_to FROM edi_good")
        self.sql("""
        CREATE OR REPLACE TEMP TABLE edi_positions AS
        SELECT e.source, e.system, 'edi' AS kind, e.file, e.sku, l.location, e.ts AS as_of, e.uom AS uom_source,
               e.f AS units_per_uom,
               CASE WHEN e.qty_type = 'available' THEN NULL ELSE e.eaches END AS on_hand, NULL::BIGINT AS reserved,
               CASE WHEN e.qty_type = 'available' THEN e.eaches END AS available, NULL::DOUBLE AS unit_cost
        FROM edi_good e JOIN edi_locs l ON l.system = e.system AND l.raw = e.c_location
        WHERE e.kind = 'position'""")
        # In-transit lines: an end that is named must map; a missing end stays null.
        self.sql("""
        CREATE OR REPLACE TEMP TABLE in_transit_lines AS
        SELECT e.source, e.file, e.segment, e.shipment_id, e.sku, lf.location AS from_location, lt.location AS to_location,
               e.eaches AS qty, e.ts AS shipped_at
        FROM edi_good e
        LEFT JOIN edi_locs lf ON lf.system = e.system AND lf.raw = e.c_from
        LEFT JOIN edi_locs lt ON lt.system = e.system AND lt.raw = e.c_to
        WHERE e.kind = 'in_transit' AND e.shipment_id IS NOT NULL AND e.shipment_id <> ''
          AND (e.c_from IS NULL OR lf.location IS NOT NULL) AND (e.c_to IS NULL OR lt.location IS NOT NULL)""")
        self.sql(f"""
        CREATE OR REPLACE TEMP TABLE edi_movements AS
        SELECT e.file || '#segment ' || e.segment AS event_id, e.source, e.system, e.event_type, e.sku, l.location,
               e.eaches * CASE e.event_type {" ".join(f"WHEN {q(k)} THEN {v}" for k, v in EVENT_SIGN.items())} END AS qty,
               e.eaches * CASE e.event_type {" ".join(f"WHEN {q(k)} THEN {v}" for k, v in RESERVED_SIGN.items())} ELSE 0 END AS reserved_delta,
               e.ts AS occurred_at, e.reference, e.file, e.segment AS n
        FROM edi_good e JOIN edi_locs l ON l.system = e.system AND l.raw = e.c_location
        WHERE e.kind = 'movement' AND e.event_type IN {_in(EVENT_SIGN)}""")
        self.drop("edi_raw", "edi_cand", "edi_ids", "edi_sku", "edi_canon", "edi_good", "edi_locs")

    # ---- stock events
    def read_events(self) -> None:
        fields = ["event_id", "event_type", "occurred_at", "system", "location", "item.id_type", "item.id", "qty", "uom",
                  "reference", "counterparty_location"]
        paths = "[" + ", ".join(q("$." + f) for f in fields) + "]"
        sign = "CASE event_type " + " ".join(f"WHEN {q(k)} THEN {v}" for k, v in EVENT_SIGN.items()) + " END"
        rsign = "CASE event_type " + " ".join(f"WHEN {q(k)} THEN {v}" for k, v in RESERVED_SIGN.items()) + " ELSE 0 END"
        # Each line's fields are extracted once into a table (a projection would repeat the extraction per field),
        # file by file in line order: rowid is the order the de-dup needs. A line that is not a JSON object
        # with an `item` object is malformed_event / missing_field.
        self.sql("CREATE OR REPLACE TEMP TABLE event_fields (source VARCHAR, system VARCHAR, file VARCHAR, v VARCHAR[])")
        self.sql("SET preserve_insertion_order = true")
        for source in self.cfg.sources:
            if source.kind != "events":
                continue
            for path in self.files(source):
                try:
                    self.sql(f"""
                    INSERT INTO event_fields
                    SELECT {q(source.name)}, {q(source.system or '')}, {q(path)}, json_extract_string(json, {paths})
                    FROM read_json_objects({q(path)}, format = 'newline_delimited', ignore_errors = true)
                    WHERE json_type(json) = 'OBJECT' AND json_type(json, '$.item') = 'OBJECT'""")
                except duckdb.Error:
                    continue  # unreadable_file
        self.sql("SET preserve_insertion_order = false")
        self.sql(f"""
        CREATE OR REPLACE TEMP TABLE event_valid AS
        WITH raw AS (
            SELECT rowid AS n, source, file, coalesce(v[4], system) AS system, v[1] AS event_id, v[2] AS event_type,
                   v[3] AS c_occurred, v[5] AS c_location, coalesce(nullif(v[6], ''), 'sku') AS id_type, v[7] AS item_id,
                   v[8] AS c_qty, coalesce(nullif(v[9], ''), 'EA') AS uom, v[10] AS reference, v[11] AS c_counterparty
            FROM event_fields),
        valid AS (
            SELECT *, num(c_qty) AS n_qty, parse_ts(c_occurred) AS occurred_at FROM raw
            WHERE NOT (blank(event_id) OR blank(event_type) OR blank(c_occurred) OR blank(c_location) OR blank(c_qty)
                       OR blank(item_id))
              AND event_type IN {_in(EVENT_SIGN)})
        SELECT * FROM valid""")
        self.id_lookup("event_ids", "SELECT id_type, item_id AS raw FROM event_valid")
        self.drop("event_fields")
        self.loc_lookup("event_locs", "SELECT system, c_location AS raw FROM event_valid "
                                      "UNION ALL SELECT system, c_counterparty FROM event_valid")
        self.sql(f"""
        CREATE OR REPLACE TEMP TABLE event_movements AS
        WITH mapped AS (
            SELECT v.*, x.sku, l.location, cp.location AS counterparty_location,
                   uom_factor(uom_code(v.uom), x.units_per_id, k.case_pack) AS f
            FROM event_valid v
            JOIN event_ids x ON x.id_type = v.id_type AND x.raw = v.item_id
            JOIN packs k ON k.sku = x.sku
            JOIN event_locs l ON l.system = v.system AND l.raw = v.c_location
            LEFT JOIN event_locs cp ON cp.system = v.system AND cp.raw = v.c_counterparty)
        SELECT event_id, source, system, event_type, sku, location, CAST(n_qty * f AS BIGINT) * {sign} AS qty,
               CAST(n_qty * f AS BIGINT) * {rsign} AS reserved_delta, occurred_at, reference, file, n
        FROM mapped
        WHERE occurred_at IS NOT NULL AND f IS NOT NULL AND whole(n_qty * f) AND (n_qty >= 0 OR event_type = 'adjustment')
          AND (c_counterparty IS NULL OR counterparty_location IS NOT NULL)""")
        self.drop("event_valid", "event_ids", "event_locs")

    # ---- data-quality row-level expectations
    def _suite(self, path) -> list[dict]:
        text = path.read_text(encoding="utf-8") if hasattr(path, "read_text") else pathlib.Path(path).read_text(encoding="utf-8")
        return json.loads(text)["expectations"]

    def _base_suite(self, record: str) -> list[dict]:
        return self._suite(importlib.resources.files("invrecon.expectations") / SUITES[record])

    def _param(self, value):
        lag = dt.timedelta(hours=self.cfg.max_as_of_lag_hours)
        if isinstance(value, dict) and "$PARAMETER" in value:
            name = value["$PARAMETER"]
            params = {"window_start": self.T - lag, "window_end": self.T + lag, "fresh_after": self.T - lag}
            if name not in params:
                raise ReferenceError_(f"suite parameter {name!r} is not a row-level one")
            value = params[name]
        if isinstance(value, dt.datetime):
            return f"TIMESTAMPTZ {q(value.isoformat())}"
        if isinstance(value, str):
            return f"TIMESTAMPTZ {q(value)}"
        return q(value)

    def row_checks(self, expectations: list[dict]) -> tuple[list[str], list[str]]:
        """(WHERE conditions, QUALIFY conditions) a row must meet for the suite's row-level expectations."""
        where, qualify = [], []
        for e in expectations:
            kind, kw = e["type"], e.get("kwargs") or {}
            if not kind.startswith(("expect_column_values_to_", "expect_column_pair_values_", "expect_multicolumn_values_",
                                    "expect_select_column_values_")):
                continue  # table-level: it gates the run, it never changes a figure
            c = ident(kw["column"]) if "column" in kw else None
            if kind == "expect_column_values_to_not_be_null":
                where.append(f"{c} IS NOT NULL")
            elif kind == "expect_column_values_to_be_between":
                lo = f"{c} {'>' if kw.get('strict_min') else '>='} {self._param(kw['min_value'])}" if kw.get("min_value") is not None else "TRUE"
                hi = f"{c} {'<' if kw.get('strict_max') else '<='} {self._param(kw['max_value'])}" if kw.get("max_value") is not None else "TRUE"
                where.append(f"({c} IS NULL OR ({lo} AND {hi}))")
            elif kind == "expect_column_values_to_be_in_set":
                where.append(f"({c} IS NULL OR {c} IN {_in(kw['value_set'])})")
            elif kind == "expect_column_values_to_not_be_in_set":
                where.append(f"({c} IS NULL OR {c} NOT IN {_in(kw['value_set'])})")
            elif kind == "expect_column_values_to_match_regex":
                where.append(f"({c} IS NULL OR regexp_matches(CAST({c} AS VARCHAR), {q(kw['regex'])}))")
            elif kind == "expect_column_values_to_not_match_regex":
                where.append(f"({c} IS NULL OR NOT regexp_matches(CAST({c} AS VARCHAR), {q(kw['regex'])}))")
            elif kind == "expect_column_values_to_be_unique":
                qualify.append(f"({c} IS NULL OR count(*) OVER (PARTITION BY {c}) = 1)")
            else:
                raise ReferenceError_(f"row-level expectation {kind} has no SQL here")
        return where, qualify

    def validated(self, table: str, record: str) -> str:
        """SELECT of the rows of `table` that pass the suites of `record` (and each source's own)."""
        where, qualify = self.row_checks(self._base_suite(record))
        if record == "positions":
            for s in self.cfg.sources:
                if s.suite:
                    w, qu = self.row_checks(self._suite(s.suite))
                    if qu:
                        raise ReferenceError_(f"{s.suite}: a per-source unique expectation has no SQL here")
                    if w:
                        where.append(f"(source <> {q(s.name)} OR ({' AND '.join(w)}))")
        text = f"SELECT * FROM {table} WHERE " + (" AND ".join(where) or "TRUE")
        if qualify:
            text += " QUALIFY " + " AND ".join(qualify)
        return text

    # ---- reconcile
    def reconcile(self) -> str:
        cfg, T = self.cfg, self.Tq
        R = q(cfg.record_system)
        self.sql(f"""
        CREATE OR REPLACE TEMP TABLE positions AS {self.validated(
            "(SELECT * FROM tab_positions UNION ALL BY NAME SELECT * FROM edi_positions)", "positions")}""")
        self.drop("tab_positions", "edi_positions")
        # De-duplicate every movement by event_id (first in file, line order), then validate.
        self.sql("""
        CREATE OR REPLACE TEMP TABLE movements_all AS
        SELECT * FROM (SELECT * FROM event_movements UNION ALL BY NAME SELECT * FROM edi_movements)
        QUALIFY row_number() OVER (PARTITION BY event_id ORDER BY file, n, event_id) = 1""")
        self.sql(f"CREATE OR REPLACE TEMP TABLE mv AS {self.validated('movements_all', 'movements')}")
        self.drop("movements_all", "event_movements", "edi_movements")
        self.sql(f"CREATE OR REPLACE TEMP TABLE shipped AS {self.validated('in_transit_lines', 'in_transit')}")
        tol_abs = "CASE " + " ".join(
            f"WHEN {' AND '.join(f'coalesce(CAST({TOLERANCE_FIELDS[k]} AS VARCHAR) = {q(v)}, FALSE)' for k, v in m.items()) or 'TRUE'} THEN {a}"
            for m, a, _ in cfg.tolerances) + " ELSE 0.0 END"
        tol_pct = "CASE " + " ".join(
            f"WHEN {' AND '.join(f'coalesce(CAST({TOLERANCE_FIELDS[k]} AS VARCHAR) = {q(v)}, FALSE)' for k, v in m.items()) or 'TRUE'} THEN {p}"
            for m, _, p in cfg.tolerances) + " ELSE 0.0 END"
        return f"""
        WITH
        summed AS (  -- rows of one system, sku, location and as-of add up (bins)
            SELECT system, sku, location, as_of, sum(on_hand) AS on_hand, sum(reserved) AS reserved,
                   any_value(unit_cost) FILTER (WHERE unit_cost IS NOT NULL) AS unit_cost
            FROM positions WHERE kind <> 'availability' AND on_hand IS NOT NULL GROUP BY ALL),
        latest AS (  -- a newer as-of supersedes an older one
            SELECT * FROM summed QUALIFY row_number() OVER (PARTITION BY system, sku, location ORDER BY as_of DESC) = 1),
        window_mv AS (
            SELECT l.system, l.sku, l.location, l.as_of <= {T} AS fwd, m.event_type, m.qty, m.reserved_delta,
                   m.occurred_at, m.event_id
            FROM latest l JOIN mv m ON m.sku = l.sku AND m.location = l.location
            WHERE (l.as_of <= {T} AND m.occurred_at > l.as_of AND m.occurred_at <= {T})
               OR (l.as_of > {T} AND m.occurred_at > {T} AND m.occurred_at <= l.as_of)),
        last_count AS (  -- forward only: the last count in (as_of, T] resets the figure
            SELECT system, sku, location, arg_max(qty, (occurred_at, event_id)) AS count_qty, max(occurred_at) AS count_at
            FROM window_mv WHERE fwd AND event_type = 'count' GROUP BY ALL),
        sums AS (
            SELECT w.system, w.sku, w.location,
                   sum(w.qty) FILTER (WHERE w.event_type <> 'count' AND (c.count_at IS NULL OR w.occurred_at > c.count_at)) AS moved,
                   sum(w.reserved_delta) AS reserved_moved
            FROM window_mv w LEFT JOIN last_count c USING (system, sku, location) GROUP BY ALL),
        rolled AS (
            SELECT l.system, l.sku, l.location, l.on_hand AS raw_qty, l.unit_cost,
                   CASE WHEN l.as_of <= {T} THEN coalesce(c.count_qty, l.on_hand) + coalesce(s.moved, 0)
                        ELSE l.on_hand - coalesce(s.moved, 0) END AS qty_t,
                   CASE WHEN l.as_of <= {T} THEN l.reserved + coalesce(s.reserved_moved, 0)
                        ELSE l.reserved - coalesce(s.reserved_moved, 0) END AS reserved_t
            FROM latest l LEFT JOIN sums s USING (system, sku, location) LEFT JOIN last_count c USING (system, sku, location)),
        receipts AS (
            SELECT reference AS shipment_id, sku, sum(qty) AS received FROM mv
            WHERE event_type IN ('receipt', 'transfer_in') AND reference IS NOT NULL AND occurred_at <= {T} GROUP BY ALL),
        open_transit AS (  -- shipped by T, not (fully) received by T
            SELECT s.shipment_id, s.sku, any_value(s.from_location) AS from_location, any_value(s.to_location) AS to_location,
                   sum(s.qty) - coalesce(any_value(r.received), 0) AS qty
            FROM shipped s LEFT JOIN receipts r USING (shipment_id, sku)
            WHERE s.shipped_at IS NULL OR s.shipped_at <= {T}
            GROUP BY s.shipment_id, s.sku HAVING sum(s.qty) - coalesce(any_value(r.received), 0) > 0),
        inbound AS (SELECT sku, to_location AS location, sum(qty) AS q FROM open_transit WHERE to_location IS NOT NULL GROUP BY ALL),
        outbound AS (SELECT sku, from_location AS location, sum(qty) AS q FROM open_transit WHERE from_location IS NOT NULL GROUP BY ALL),
        keys AS (SELECT DISTINCT sku, location FROM rolled),
        coverage AS (SELECT DISTINCT system AS other_system, location FROM rolled WHERE system <> {R}),
        pairs AS (
            SELECT k.sku, k.location, cv.other_system,
                   r.qty_t AS record_qty, r.raw_qty AS raw_record_qty, s.qty_t AS other_qty, s.raw_qty AS raw_other_qty,
                   coalesce(i.unit_cost, r.unit_cost) AS unit_cost, i.abc_class, i.category, lt.location_type,
                   coalesce(ib.q, 0) AS inbound, coalesce(ob.q, 0) AS outbound
            FROM keys k JOIN coverage cv USING (location)
            LEFT JOIN rolled r ON r.sku = k.sku AND r.location = k.location AND r.system = {R}
            LEFT JOIN rolled s ON s.sku = k.sku AND s.location = k.location AND s.system = cv.other_system
            LEFT JOIN items i ON i.sku = k.sku
            LEFT JOIN loc_types lt ON lt.location = k.location
            LEFT JOIN inbound ib ON ib.sku = k.sku AND ib.location = k.location
            LEFT JOIN outbound ob ON ob.sku = k.sku AND ob.location = k.location),
        measured AS (
            SELECT *, coalesce(other_qty, 0) - coalesce(record_qty, 0) AS delta,
                   coalesce(raw_other_qty, 0) - coalesce(raw_record_qty, 0) AS raw_delta,
                   greatest({tol_abs}, {tol_pct} * abs(coalesce(record_qty, 0))) AS tolerance,
                   greatest({tol_abs}, {tol_pct} * abs(coalesce(raw_record_qty, 0))) AS raw_tolerance
            FROM pairs),
        classified AS (
            SELECT *, CASE
                WHEN record_qty IS NOT NULL AND record_qty <> 0 AND other_qty IS NULL THEN 'missing_in_other'
                WHEN other_qty IS NOT NULL AND other_qty <> 0 AND record_qty IS NULL THEN 'missing_in_record'
                WHEN delta <> 0 AND abs(delta) IN (inbound, outbound, inbound + outbound) THEN 'in_transit'
                WHEN delta <> 0 AND abs(delta) <= tolerance THEN 'within_tolerance'
                WHEN delta <> 0 THEN 'qty_mismatch'
                WHEN abs(raw_delta) > raw_tolerance THEN 'timing'  -- delta = 0: the roll explains it all
            END AS class
            FROM measured),
        atp AS (
            SELECT r.sku, r.location, r.unit_cost,
                   greatest(0, r.qty_t - coalesce(r.reserved_t, 0) - coalesce(i.safety_stock, 0)) AS atp
            FROM rolled r LEFT JOIN items i USING (sku) WHERE r.system = {R}),
        published AS (
            SELECT * FROM (
                SELECT system, sku, location, as_of, sum(available) AS available FROM positions
                WHERE kind = 'availability' AND available IS NOT NULL GROUP BY ALL)
            QUALIFY row_number() OVER (PARTITION BY system, sku, location ORDER BY as_of DESC) = 1),
        oversell AS (
            SELECT p.sku, p.location, p.system AS other_system, 'oversell_risk' AS class, coalesce(a.atp, 0) AS record_qty,
                   p.available AS other_qty, p.available - coalesce(a.atp, 0) AS delta, NULL::BIGINT AS raw_delta,
                   0.0 AS tolerance, NULL::BIGINT AS explained_qty, coalesce(i.unit_cost, a.unit_cost) AS unit_cost
            FROM published p LEFT JOIN atp a USING (sku, location) LEFT JOIN items i USING (sku)
            WHERE p.available > coalesce(a.atp, 0))
        SELECT sku, location, other_system, class, CAST(record_qty AS BIGINT) AS record_qty, CAST(other_qty AS BIGINT) AS other_qty,
               CAST(delta AS BIGINT) AS delta, CAST(raw_delta AS BIGINT) AS raw_delta, CAST(tolerance AS DOUBLE) AS tolerance,
               CAST(explained_qty AS BIGINT) AS explained_qty, CAST(unit_cost AS DOUBLE) AS unit_cost,
               CAST(delta AS DOUBLE) * CAST(unit_cost AS DOUBLE) AS value_delta
        FROM (
            SELECT sku, location, other_system, class, record_qty, other_qty, delta, raw_delta, tolerance,
                   CASE class WHEN 'in_transit' THEN CASE WHEN abs(delta) = inbound THEN inbound WHEN abs(delta) = outbound THEN outbound
                                                          ELSE inbound + outbound END
                              WHEN 'timing' THEN raw_delta - delta END AS explained_qty, unit_cost
            FROM classified WHERE class IS NOT NULL
            UNION ALL
            SELECT sku, location, other_system, class, record_qty, other_qty, delta, raw_delta, tolerance, explained_qty, unit_cost
            FROM oversell)
        ORDER BY sku, location, other_system, class"""


def default_memory_limit() -> str:
    """Half the machine's memory, at most 8 GB: DuckDB spills the rest to a temporary folder."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return "4GB"
    return f"{max(1, min(8 << 30, total // 2) >> 20)}MB"


def reference_discrepancies(config: str | os.PathLike, run_date: dt.date, *, out: str | None = None,
                            con: duckdb.DuckDBPyConnection | None = None, memory_limit: str | None = None,
                            stats: dict | None = None) -> pa.Table:
    """Reconcile run date `run_date` of `config` from its raw inputs; return the discrepancy rows.

    Args:
      config: the invrecon config YAML (a local path).
      run_date: the run date D (cut-off D 23:59:59.999 in the config's time zone).
      out: also write the rows to this Parquet file.
      con: a DuckDB connection to work in (default: a new in-memory one).
      memory_limit: DuckDB's memory limit (default `default_memory_limit()`); beyond it, DuckDB
        spills to a temporary folder.
      stats: filled with the counts of canonical positions and movements (after de-dup and the
        data-quality checks) that were reconciled.

    Returns:
      Columns `COLUMNS`, sorted by (sku, location, other_system, class).
    """
    cfg = load_config(config)
    own = con is None
    con = con or duckdb.connect()
    try:
        with tempfile.TemporaryDirectory(prefix="invrecon-reference-") as workdir:
            con.execute("SET TimeZone = 'UTC'")
            con.execute("SET enable_progress_bar = false")
            con.execute(f"SET memory_limit = {q(memory_limit or default_memory_limit())}")
            con.execute(f"SET temp_directory = {q(os.path.join(workdir, 'spill'))}")
            # Row order only matters where a step reads it (file order of the events, first crosswalk
            # rows); elsewhere DuckDB may reorder, which it needs to stay within its memory limit.
            con.execute("SET preserve_insertion_order = true")
            con.execute(MACROS + _ts_macro(cfg.timezone))
            ref = _Reference(con, cfg, run_date, workdir)
            ref.load_reference_data()
            con.execute("SET preserve_insertion_order = false")
            ref.read_tabular()
            ref.read_edi()
            ref.read_events()
            query = ref.reconcile()
            if stats is not None:
                stats["positions"] = con.execute("SELECT count(*) FROM positions").fetchall()[0][0]
                stats["movements"] = con.execute("SELECT count(*) FROM mv").fetchall()[0][0]
            if out:
                con.execute(f"COPY ({query}) TO {q(out)} (FORMAT parquet)")
                return con.sql(f"SELECT * FROM read_parquet({q(out)})").to_arrow_table()
            return con.sql(query).to_arrow_table()
    finally:
        if own:
            con.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.reference_sql", description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="invrecon config YAML (local path)")
    parser.add_argument("--run-date", required=True, help="YYYY-MM-DD")
    parser.add_argument("--out", help="write the discrepancy rows to this Parquet file")
    parser.add_argument("--memory-limit", help="DuckDB memory limit, e.g. 4GB (default: half the memory, at most 8GB)")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    stats: dict = {}
    try:
        table = reference_discrepancies(args.config, dt.date.fromisoformat(args.run_date), out=args.out,
                                        memory_limit=args.memory_limit, stats=stats)
    except (ReferenceError_, OSError, KeyError, yaml.YAMLError) as e:
        print(f"reference: {e}", file=sys.stderr)
        return 2
    wall = time.perf_counter() - t0
    classes: dict[str, int] = {}
    for c in table.column("class").to_pylist():
        classes[c] = classes.get(c, 0) + 1
    print(f"reference: {table.num_rows} discrepancy rows in {wall:.2f} s")
    for c in sorted(classes):
        print(f"  {c:<20} {classes[c]:>10}")
    print(f"  from {stats['positions']:,} canonical positions and {stats['movements']:,} movements")
    print(json.dumps({"rows": table.num_rows, "wall_s": round(wall, 3), "classes": classes, **stats}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
