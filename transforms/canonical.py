"""Canonical identifiers, locations, units and timestamps, as columnar polars kernels.

Every source speaks its own ids: ERP material numbers, UPC-12 in one feed and GTIN-14 in
another, case GTINs, store item numbers, per-system location codes. This module maps them all to
the canonical (sku, location, eaches) of DESIGN.md §5 through the crosswalks, and sends each row it
cannot map to quarantine with a reason code instead of guessing.

The functions here are pure (DataFrame in, DataFrame out) so Beam DoFns call them on one
`pyarrow.Table` batch at a time and tests call them directly.

Example:
    >>> gtin14_or_none("036000291452")
    '00036000291452'
    >>> gtin14_or_none("036000291453") is None   # bad check digit
    True
"""

from __future__ import annotations

import datetime as dt
import decimal

import numpy as np
import polars as pl

from invrecon.transforms.crosswalks import (  # noqa: F401  (re-exported: canonical is where readers take them from)
    GTIN_WEIGHTS,
    ID_TYPES,
    UOM_CASE,
    UOM_EACH,
    UOM_FIXED,
    CrosswalkError,
    Crosswalks,
    file_sha256,
    gtin14_or_none,
    load_crosswalks,
    normalize_gtin_expr,
    read_csv_rows,
    shared_crosswalks,
)
from invrecon.transforms.quarantine import RAW_MAX_BYTES, cap_raw, cut_raw, quarantine_rows, reject, split_rows  # noqa: F401

__all__ = [
    "ID_TYPES",
    "MAX_EACHES",
    "NOT_A_NUMBER",
    "TIMESTAMP_MAX",
    "TIMESTAMP_MIN",
    "OUT_OF_RANGE",
    "UOM_EACH",
    "Crosswalks",
    "CrosswalkError",
    "apply_uom",
    "cap_raw",
    "cut_raw",
    "gtin14_or_none",
    "file_sha256",
    "load_crosswalks",
    "shared_crosswalks",
    "load_items",
    "map_locations",
    "map_skus",
    "normalize_gtin_expr",
    "parse_timestamps",
    "quarantine_rows",
    "reject",
    "split_rows",
    "timestamp_problem",
    "to_eaches",
]

def map_skus(df: pl.DataFrame, crosswalks: Crosswalks, *, id_col: str, type_col: str, label: str | None = None) -> tuple[pl.DataFrame, list[pl.DataFrame]]:
    """Map (id type, id value) to sku and units_per_id.

    Rows whose GTIN fails its check digit are quarantined as `bad_check_digit`, ids that map to
    nothing as `unmapped_sku`, missing ids as `missing_field`. Messages name the field
    `label` (default `id_col`): the column as the source file calls it.

    Returns:
      (mapped rows with `sku` and `units_per_id` added, [quarantine frames]).
    """
    rejected: list[pl.DataFrame] = []
    df = df.with_columns(pl.col(id_col).cast(pl.String).str.strip_chars().alias("_id"))
    label = label or id_col
    df = reject(df, pl.col("_id").is_null() | (pl.col("_id") == ""), "missing_field", f"field {label}: item id is empty", rejected)
    # Normalize and look up each distinct (type, id) once: a day's files name the same few
    # thousand items over and over, so this is a small frame, joined back in one step.
    keys = _sku_keys(df, crosswalks, type_col)
    joined = df.join(keys, on=[type_col, "_id"], how="left", nulls_equal=True, maintain_order="left")
    bad_gtin = pl.format("field {}: {} is not a valid GTIN (check digit)", pl.lit(label), pl.col("_id"))
    joined = reject(joined, pl.col("_bad_gtin"), "bad_check_digit", bad_gtin, rejected)
    unmapped = pl.format("field {}: {} {} is not in the sku crosswalk", pl.lit(label), pl.col(type_col), pl.col("_id"))
    mapped = reject(joined, pl.col("sku").is_null(), "unmapped_sku", unmapped, rejected)
    return mapped.drop("_id", "_bad_gtin"), rejected


def _sku_keys(df: pl.DataFrame, crosswalks: Crosswalks, type_col: str) -> pl.DataFrame:
    """Each distinct (type, `_id`) of `df` with `_bad_gtin`, sku and units_per_id (null: unmapped).

    GTINs are normalized to GTIN-14 before the lookup (`gtin14_or_none`'s rule; an invalid one
    is `_bad_gtin`); other ids are looked up as they are, in their own type's crosswalk only.
    """
    out = []
    for (id_type,), keys in df.select(type_col, "_id").unique().partition_by(type_col, as_dict=True).items():
        if id_type == "gtin":
            norm, valid = _gtins(keys["_id"])
            keys = keys.with_columns(norm.alias("_id_norm"), (~valid).alias("_bad_gtin"))
        else:
            keys = keys.with_columns(pl.col("_id").alias("_id_norm"), pl.lit(False).alias("_bad_gtin"))
        out.append(keys.join(crosswalks.sku_of(id_type), on="_id_norm", how="left").drop("_id_norm"))
    if not out:
        schema = {type_col: df.schema[type_col], "_id": pl.String, "_bad_gtin": pl.Boolean, "sku": pl.String, "units_per_id": pl.Int64}
        return pl.DataFrame(schema=schema)
    return pl.concat(out)


def _gtins(ids: pl.Series) -> tuple[pl.Series, pl.Series]:
    """(GTIN-14 or null, valid) of stripped ids: `normalize_gtin_expr`'s result, the check digits
    of ASCII ids computed by numpy (the expression's 14 slices cost ~4 us an id)."""
    padded = ids.str.zfill(14)
    shaped = ids.str.contains(r"^(\d{8}|\d{12}|\d{13}|\d{14})$").fill_null(False)
    ascii_ = shaped & (padded.str.len_bytes() == 14).fill_null(False)
    valid = np.zeros(len(ids), dtype=bool)
    at = ascii_.arg_true().to_numpy()
    if len(at):
        digits = np.frombuffer(padded.gather(at).str.join("").item().encode("ascii"), dtype=np.uint8).reshape(-1, 14) - 48
        total = digits[:, :13].astype(np.int64) @ np.array(GTIN_WEIGHTS, dtype=np.int64)
        valid[at] = (10 - total % 10) % 10 == digits[:, 13]
    other = (shaped & ~ascii_).arg_true().to_numpy()
    if len(other):  # digits of other scripts (\d, like str.isdigit, takes them): the expression's way
        _, ok = normalize_gtin_expr(pl.col("_id"))
        valid[other] = pl.DataFrame({"_id": ids.gather(other)}).select(ok).to_series().to_numpy()
    flags = pl.Series("valid", valid, dtype=pl.Boolean)
    return pl.DataFrame({"p": padded, "ok": flags}).select(pl.when(pl.col("ok")).then(pl.col("p"))).to_series(), flags


def map_locations(
    df: pl.DataFrame, crosswalks: Crosswalks, *, col: str, system_col: str, out: str, label: str | None = None,
) -> tuple[pl.DataFrame, list[pl.DataFrame]]:
    """Map a per-system location code to the canonical location in column `out`.

    Codes not in the crosswalk are quarantined as `unmapped_location` (the message names the
    field `label`, default `col`); a null code passes through as null (callers decide whether
    a location is required).
    """
    lookup = crosswalks.location.select(
        pl.col("system").alias(system_col),
        pl.col("source_location").alias("_src_loc"),
        pl.col("location").alias(out),
    )
    df = df.with_columns(pl.col(col).cast(pl.String).str.strip_chars().alias("_src_loc"))
    if out in df.columns:  # also when out == col: the code lives on in _src_loc
        df = df.drop(out)
    joined = df.join(lookup, on=[system_col, "_src_loc"], how="left")
    rejected: list[pl.DataFrame] = []
    reason = pl.format("field {}: {} location {} is not in the location crosswalk", pl.lit(label or col), pl.col(system_col), pl.col("_src_loc"))
    kept = reject(joined, pl.col(out).is_null() & pl.col("_src_loc").is_not_null(), "unmapped_location", reason, rejected)
    return kept.drop("_src_loc"), rejected


def apply_uom(df: pl.DataFrame, crosswalks: Crosswalks, *, uom_col: str) -> tuple[pl.DataFrame, list[pl.DataFrame]]:
    """Add `units_per_uom`: eaches in one counted unit, from the unit code and the crosswalk.

    - each codes (EA, PC, PCE ...): one of the identified item, so `units_per_id` eaches (a case
      GTIN counted in EA counts cases);
    - case codes (CA, CS, PK ...): the id's own units when it names a case (units_per_id > 1),
      else the SKU's case pack;
    - fixed codes: DZ = 12, GR = 144, PR = 2 (times units_per_id).
    Anything else is quarantined as `unknown_uom`.
    """
    df = df.join(crosswalks.packs, on="sku", how="left").with_columns(
        pl.col(uom_col).cast(pl.String).str.strip_chars().str.to_uppercase().fill_null("").alias("_uom")
    )
    fixed = pl.col("_uom").replace_strict(UOM_FIXED, default=None, return_dtype=pl.Int64)
    factor = (
        pl.when(pl.col("_uom").is_in(list(UOM_EACH))).then(pl.col("units_per_id"))
        .when(pl.col("_uom").is_in(list(UOM_CASE))).then(
            pl.when(pl.col("units_per_id") > 1).then(pl.col("units_per_id")).otherwise(pl.col("case_pack"))
        )
        .when(fixed.is_not_null()).then(fixed * pl.col("units_per_id"))
        .otherwise(None)
    )
    df = df.with_columns(factor.alias("units_per_uom"))
    rejected: list[pl.DataFrame] = []
    reason = pl.format("field {}: unit {} is not known", pl.lit(uom_col), pl.col("_uom"))
    df = reject(df, pl.col("units_per_uom").is_null(), "unknown_uom", reason, rejected)
    return df.drop("_uom", "case_pack"), rejected


# The largest quantity accepted, in eaches (before and after the unit conversion): no stock
# figure of one item at one place comes near it, and a million of them still sum within Int64.
MAX_EACHES = 10**12
# Quantities that are whole numbers (integer columns, integral floats, integer texts) take the
# columnar path; any other value is read exactly as a decimal (`decimal.Decimal`; a float by its
# repr), never multiplied as a binary float, so 1.1 CS of 10 is 11 eaches (a float says
# 11.000000000000002) and 1e-30 EA is not 0.
# Enough digits that a product of two in-range figures is exact; a product that is not exact
# (Inexact) had non-zero digits beyond the integer part, so it is not whole.
_DECIMAL = decimal.Context(prec=100, Emax=decimal.MAX_EMAX, Emin=decimal.MIN_EMIN)
_EACHES = pl.Struct({"eaches": pl.Int64, "problem": pl.String})
NOT_A_NUMBER = "is not a number"
OUT_OF_RANGE = f"is out of range (more than {MAX_EACHES:,.0f} eaches)"


def to_eaches(qty: pl.Expr, factor: pl.Expr) -> pl.Expr:
    """A quantity (text or a number column) times its unit factor, as whole eaches, exactly.

    Returns a struct expression with `eaches` (Int64, null when there is a problem) and
    `problem` (null when fine, else the words that finish "field qty: <value> ...":
    `NOT_A_NUMBER`, `OUT_OF_RANGE`, or "is 147.6 eaches, not a whole number"). Never null
    itself: every row has either eaches or a problem.

    Example:
        >>> df = pl.DataFrame({"q": ["12.5", "12.3", "1e308", "12x", " 7 "], "f": [12, 12, 1, 1, 1]})
        >>> df.select(to_eaches(pl.col("q"), pl.col("f")).alias("e")).unnest("e").rows()[:3]
        [(150, None), (None, 'is 147.6 eaches, not a whole number'), (None, 'is out of range (more than 1,000,000,000,000 eaches)')]
    """
    pair = pl.struct(qty.alias("q"), factor.cast(pl.Int64).alias("f"))
    return pair.map_batches(_eaches_batch, return_dtype=_EACHES, is_elementwise=True)


def _whole_numbers(q: pl.Series) -> tuple[pl.Series, pl.Series]:
    """(the values that are whole numbers, as Int64 (else null); whether each is settled: whole or absent).

    Integers, integral floats and integer texts are settled here; fractions, exponents, NaN,
    infinities and anything else are left to `_eaches_one` (a float by its repr, exactly).
    """
    if q.dtype.is_integer():
        whole = q.cast(pl.Int64, strict=False)
        return whole, whole.is_not_null() | q.is_null()
    if q.dtype.is_float():
        integral = (q.is_finite() & (q == q.floor()) & (q.abs() <= MAX_EACHES)).fill_null(False)
        return pl.select(pl.when(integral).then(q.cast(pl.Int64, strict=False))).to_series(), integral | q.is_null()
    text = q.cast(pl.String).str.strip_chars()
    whole = text.cast(pl.Int64, strict=False)
    return whole, whole.is_not_null() | text.is_null() | (text == "")


def _eaches_batch(pairs: pl.Series) -> pl.Series:
    """`to_eaches` of one batch: whole numbers columnar, other values one by one, exactly."""
    q, f = pairs.struct.field("q"), pairs.struct.field("f")
    whole, settled = _whole_numbers(q)
    out = pl.DataFrame({"w": whole, "f": f, "settled": settled & f.is_not_null()}).select(
        (pl.col("w").cast(pl.Float64) * pl.col("f").cast(pl.Float64)).abs().le(MAX_EACHES).fill_null(False).alias("ok"), "w", "f", "settled",
    ).select(
        "settled",
        pl.when("ok").then(pl.col("w") * pl.col("f")).alias("eaches"),
        pl.when(pl.col("w").is_null()).then(pl.lit(NOT_A_NUMBER)).when("ok").then(None).otherwise(pl.lit(OUT_OF_RANGE)).alias("problem"),
    )
    eaches, problem = out["eaches"], out["problem"]
    slow_idx = (~out["settled"]).arg_true()
    if len(slow_idx):
        texts = [None if v is None else (repr(v) if isinstance(v, float) else str(v)) for v in q.gather(slow_idx).to_list()]
        slow = [_eaches_one(t.strip() if t else t, k) for t, k in zip(texts, f.gather(slow_idx).to_list())]
        eaches = eaches.scatter(slow_idx, pl.Series([e for e, _ in slow], dtype=pl.Int64))
        problem = problem.scatter(slow_idx, pl.Series([p for _, p in slow], dtype=pl.String))
    return pl.DataFrame([eaches.alias("eaches"), problem.alias("problem")]).to_struct(pairs.name)


def _eaches_one(text: str | None, factor: int | None) -> tuple[int | None, str | None]:
    """`to_eaches` of one text that is not a plain integer."""
    if not text or "_" in text or factor is None:
        return None, NOT_A_NUMBER
    try:
        value = decimal.Decimal(text)
    except (decimal.InvalidOperation, ValueError):
        return None, NOT_A_NUMBER
    if value.is_nan():
        return None, NOT_A_NUMBER
    if value.is_infinite() or abs(value) > MAX_EACHES:
        return None, OUT_OF_RANGE
    ctx = _DECIMAL.copy()
    eaches = ctx.multiply(value, decimal.Decimal(factor))
    if abs(eaches) > MAX_EACHES:
        return None, OUT_OF_RANGE
    if ctx.flags[decimal.Inexact]:
        return None, "is not a whole number of eaches"
    if eaches != eaches.to_integral_value(context=ctx):
        return None, f"is {eaches.normalize(context=ctx)} eaches, not a whole number"
    return int(eaches), None


_OFFSET_RE = r"(Z|[+-]\d\d:?\d\d)$"
_NAIVE_FORMATS = ("%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%d")
_OFFSET_FORMATS = ("%Y-%m-%dT%H:%M:%S%.f%:z", "%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%d %H:%M:%S%.f%:z", "%Y-%m-%dT%H:%M%:z")


def parse_timestamps(col: pl.Expr, *, timezone: str, dtype: pl.DataType | None = None) -> pl.Expr:
    """Parse ISO 8601 timestamps to UTC; those without an offset are in `timezone`.

    Already-typed columns are accepted: naive datetimes are taken as local time, aware ones are
    converted. Unparseable values become null (callers quarantine them).
    """
    if isinstance(dtype, pl.Datetime):
        if dtype.time_zone is None:
            return col.dt.cast_time_unit("us").dt.replace_time_zone(timezone, ambiguous="earliest", non_existent="null").dt.convert_time_zone("UTC")
        return col.dt.cast_time_unit("us").dt.convert_time_zone("UTC")
    if isinstance(dtype, pl.Date):
        return col.cast(pl.Datetime("us")).dt.replace_time_zone(timezone, ambiguous="earliest", non_existent="null").dt.convert_time_zone("UTC")
    return col.map_batches(lambda values: _parse_timestamp_series(values, timezone), return_dtype=_UTC_US, is_elementwise=True)


_UTC_US = pl.Datetime("us", "UTC")


def _parse_timestamp_series(values: pl.Series, timezone: str) -> pl.Series:
    """`parse_timestamps` of a column: the common shape in one pass, the rest format by format.

    Most values look like `2026-11-30T10:05:00+00:00` (what isoformat writes); only those that
    shape leaves null go through the other formats, each of which costs a full pass.
    """
    s = values.cast(pl.String).str.strip_chars()
    out = s.str.to_datetime(_OFFSET_FORMATS[0], strict=False, time_unit="us", time_zone="UTC")
    rest = out.is_null() & s.is_not_null()
    if not rest.any():
        return out
    slow = pl.DataFrame({"s": s.filter(rest)}).select(_parse_any_format(pl.col("s"), timezone))
    return out.scatter(rest.arg_true(), slow.to_series())


def _parse_any_format(s: pl.Expr, timezone: str) -> pl.Expr:
    has_offset = s.str.contains(_OFFSET_RE).fill_null(False)
    with_offset = s.str.replace(r"Z$", "+00:00")
    aware = pl.coalesce(
        [with_offset.str.to_datetime(f, strict=False, time_unit="us", time_zone="UTC") for f in _OFFSET_FORMATS]
    )
    naive = pl.coalesce([s.str.to_datetime(f, strict=False, time_unit="us") for f in _NAIVE_FORMATS])
    local = naive.dt.replace_time_zone(timezone, ambiguous="earliest", non_existent="null").dt.convert_time_zone("UTC")
    return pl.when(has_offset).then(aware).otherwise(local)


# The supported range of every timestamp read: pandas (so Great Expectations) holds instants
# only from 1677-09-21 to 2262-04-11 (nanoseconds in Int64), and nothing dated outside
# 1900..2199 is a stock figure. Outside it, a record is `bad_timestamp`, never a crash downstream.
TIMESTAMP_MIN = dt.datetime(1900, 1, 1, tzinfo=dt.UTC)
TIMESTAMP_MAX = dt.datetime(2200, 1, 1, tzinfo=dt.UTC)


def timestamp_problem(ts: pl.Expr, raw: pl.Expr, *, field: str, unparsed: str | None = None) -> pl.Expr:
    """Why a parsed timestamp is not usable (null when it is): unparsed, or out of range.

    Args:
      ts: the parsed UTC timestamps (null where the text did not parse).
      raw: the text as written, for the message.
      field: the field name for the message.
      unparsed: the message when `ts` is null; default "field F: <raw> is not an ISO 8601 timestamp".
    """
    shown = raw.cast(pl.String).fill_null("(empty)")
    none = pl.lit(unparsed) if unparsed else pl.format("field {}: {} is not an ISO 8601 timestamp", pl.lit(field), shown)
    outside = (ts < TIMESTAMP_MIN) | (ts >= TIMESTAMP_MAX)
    span = f"{TIMESTAMP_MIN:%Y-%m-%d} .. {TIMESTAMP_MAX - dt.timedelta(days=1):%Y-%m-%d}"
    return (
        pl.when(ts.is_null()).then(none)
        .when(outside).then(pl.format("field {}: {} is outside the supported range {}", pl.lit(field), shown, pl.lit(span)))
        .otherwise(None)
    )


ITEM_COLUMNS = ("sku", "abc_class", "category", "unit_cost", "currency", "safety_stock")


def load_items(uri: str) -> pl.DataFrame:
    """Load the items master: sku, abc_class, category, unit_cost, currency, safety_stock.

    Only `sku` is required; a missing optional column is null (safety_stock 0).

    Raises:
      CrosswalkError: no `sku` column, an empty or repeated sku, or a unit_cost / safety_stock
        that is not a number, naming the file and line.
    """
    rows = read_csv_rows(uri, ("sku",))
    out: dict[str, list] = {c: [] for c in ITEM_COLUMNS}
    seen: dict[str, int] = {}
    for line, row in rows:
        sku = (row.get("sku") or "").strip()
        if not sku:
            raise CrosswalkError(f"{uri}: line {line}: field sku is empty")
        if sku in seen:
            raise CrosswalkError(f"{uri}: sku {sku!r} is listed twice: lines {seen[sku]} and {line}")
        seen[sku] = line
        cost = (row.get("unit_cost") or "").strip()
        safety = (row.get("safety_stock") or "").strip()
        try:
            cost_v = float(cost) if cost else None
        except ValueError:
            raise CrosswalkError(f"{uri}: line {line}: field unit_cost: {cost!r} is not a number") from None
        try:
            safety_v = int(safety) if safety else 0
        except ValueError:
            raise CrosswalkError(f"{uri}: line {line}: field safety_stock: {safety!r} is not a whole number") from None
        out["sku"].append(sku)
        out["abc_class"].append((row.get("abc_class") or "").strip() or None)
        out["category"].append((row.get("category") or "").strip() or None)
        out["unit_cost"].append(cost_v)
        out["currency"].append((row.get("currency") or "").strip() or None)
        out["safety_stock"].append(safety_v)
    return pl.DataFrame(
        out,
        schema={"sku": pl.String, "abc_class": pl.String, "category": pl.String, "unit_cost": pl.Float64, "currency": pl.String, "safety_stock": pl.Int64},
    )
