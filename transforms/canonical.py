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

import csv
import dataclasses
import datetime as dt
import decimal
import functools
import hashlib
import io
from collections.abc import Iterable

import fsspec
import numpy as np
import polars as pl

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

ID_TYPES = ("gtin", "erp_material", "vendor_part", "buyer_part", "store_item", "marketplace_sku", "sku")

# Unit codes that mean "one of the identified item". PC/PCE/UN/C62 are the X12 / EDIFACT / UN-ECE
# spellings partners really send for a piece.
UOM_EACH = frozenset({"EA", "EACH", "PC", "PCE", "UN", "UNIT", "C62", "EU", "EN", "PCS", ""})
# Case-like units: their size is the SKU's case pack from the crosswalk (the largest units_per_id
# of its ids), unless the id itself already names the case (units_per_id > 1).
UOM_CASE = frozenset({"CA", "CS", "CT", "CTN", "PK", "PKG", "BX", "CASE", "PACK"})
UOM_FIXED = {"DZ": 12, "DZN": 12, "GR": 144, "GRO": 144, "PR": 2, "PAI": 2}

# GTIN check digit weights for the 13 data digits of a GTIN-14, left to right.
_GTIN_WEIGHTS = [3 if i % 2 == 0 else 1 for i in range(13)]


class CrosswalkError(ValueError):
    """A crosswalk that cannot be trusted: names the file and the conflicting lines."""


def gtin14_or_none(value: str) -> str | None:
    """Normalize a GTIN-8/12/13/14 to GTIN-14, or None when it is not a valid GTIN."""
    v = value.strip()
    if len(v) not in (8, 12, 13, 14) or not v.isdigit():
        return None
    v = v.zfill(14)
    total = sum(int(d) * w for d, w in zip(v[:13], _GTIN_WEIGHTS))
    return v if (10 - total % 10) % 10 == int(v[13]) else None


def normalize_gtin_expr(col: pl.Expr) -> tuple[pl.Expr, pl.Expr]:
    """Vectorized GTIN normalization: (gtin14 or null, is_valid) expressions over `col`."""
    s = col.cast(pl.String).str.strip_chars()
    shape_ok = s.str.contains(r"^(\d{8}|\d{12}|\d{13}|\d{14})$").fill_null(False)
    padded = s.str.zfill(14)
    total = pl.sum_horizontal(
        [padded.str.slice(i, 1).cast(pl.Int32, strict=False) * w for i, w in enumerate(_GTIN_WEIGHTS)]
    )
    check = padded.str.slice(13, 1).cast(pl.Int32, strict=False)
    valid = shape_ok & (((10 - total % 10) % 10) == check).fill_null(False)
    return pl.when(valid).then(padded).otherwise(None), valid


@dataclasses.dataclass(frozen=True)
class Crosswalks:
    """The id and location crosswalks, loaded and validated once.

    Attributes:
      sku: id_type, id_value (normalized), sku, units_per_id.
      packs: sku, case_pack (largest units_per_id among the sku's ids).
      location: system, source_location, location, location_type.
    """

    sku: pl.DataFrame
    packs: pl.DataFrame
    location: pl.DataFrame

    def location_types(self) -> pl.DataFrame:
        return self.location.select("location", "location_type").unique("location", keep="first")

    @functools.cached_property
    def _sku_by_type(self) -> dict[str, pl.DataFrame]:
        return {t: g.drop("id_type").rename({"id_value": "_id_norm"}) for (t,), g in self.sku.partition_by("id_type", as_dict=True).items()}

    def sku_of(self, id_type: str | None) -> pl.DataFrame:
        """The sku crosswalk of one id type: `_id_norm` (the normalized id), sku, units_per_id.

        Split once: a batch joins only its own type's rows (a day's 175 store files each joined
        all 200k rows of the 10M bench world's crosswalk)."""
        found = self._sku_by_type.get(id_type) if id_type is not None else None
        if found is None:
            return pl.DataFrame(schema={"_id_norm": pl.String, "sku": pl.String, "units_per_id": pl.Int64})
        return found


def _read_csv_rows(uri: str, required: Iterable[str]) -> list[tuple[int, dict[str, str]]]:
    try:
        with fsspec.open(uri, "rt", encoding="utf-8-sig", newline="") as f:
            text = f.read()
    except FileNotFoundError:
        raise CrosswalkError(f"{uri}: file not found") from None
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in required if c not in (reader.fieldnames or [])]
    if missing:
        raise CrosswalkError(f"{uri}: line 1: missing column(s) {', '.join(missing)}")
    # DictReader's line_num counts physical lines, so quoted newlines keep numbers honest.
    return [(reader.line_num, row) for row in reader]


def shared_crosswalks(sku_uri: str, location_uri: str) -> Crosswalks:
    """`load_crosswalks`, once per process for the same file contents (every reader of a worker
    needs the same two files; a changed file is loaded again)."""
    digests = tuple(_digest(u) for u in (sku_uri, location_uri))
    return _crosswalks_of(sku_uri, location_uri, digests)


@functools.lru_cache(maxsize=4)
def _crosswalks_of(sku_uri: str, location_uri: str, digests: tuple[str, str]) -> Crosswalks:
    return load_crosswalks(sku_uri, location_uri)


def _digest(uri: str) -> str:
    return file_sha256(*fsspec.core.url_to_fs(uri))


def file_sha256(fs, path: str) -> str:
    """The sha256 of a file of an fsspec filesystem, read 1 MB at a time."""
    h = hashlib.sha256()
    with fs.open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_crosswalks(sku_uri: str, location_uri: str) -> Crosswalks:
    """Load both crosswalks, normalizing GTINs and refusing ambiguous rows.

    Raises:
      CrosswalkError: an id mapped to two SKUs (naming both lines), a bad GTIN, an unknown id
        type, a non-positive units_per_id, or a location code mapped twice.
    """
    rows = _read_csv_rows(sku_uri, ("id_type", "id_value", "sku", "units_per_id"))
    seen: dict[tuple[str, str], tuple[int, str, int]] = {}
    out = []
    for line, row in rows:
        id_type = (row["id_type"] or "").strip()
        raw_value = (row["id_value"] or "").strip()
        sku = (row["sku"] or "").strip()
        if id_type not in ID_TYPES:
            raise CrosswalkError(
                f"{sku_uri}: line {line}: field id_type: unknown id type {id_type!r}; "
                f"expected one of {', '.join(ID_TYPES)}"
            )
        if not raw_value or not sku:
            raise CrosswalkError(f"{sku_uri}: line {line}: id_value and sku must not be empty")
        value = raw_value
        if id_type == "gtin":
            value = gtin14_or_none(raw_value) or ""
            if not value:
                raise CrosswalkError(
                    f"{sku_uri}: line {line}: field id_value: {raw_value!r} is not a valid GTIN "
                    "(8, 12, 13 or 14 digits with a correct check digit)"
                )
        try:
            units = int(row["units_per_id"] or 1)
        except ValueError:
            raise CrosswalkError(
                f"{sku_uri}: line {line}: field units_per_id: {row['units_per_id']!r} is not a whole number"
            ) from None
        if units <= 0:
            raise CrosswalkError(f"{sku_uri}: line {line}: field units_per_id must be > 0")
        key = (id_type, value)
        if key in seen:
            first_line, first_sku, first_units = seen[key]
            if (first_sku, first_units) != (sku, units):
                raise CrosswalkError(
                    f"{sku_uri}: {id_type} {raw_value!r} is mapped twice: line {first_line} -> "
                    f"{first_sku} x{first_units}, line {line} -> {sku} x{units}"
                )
            continue
        seen[key] = (line, sku, units)
        out.append((id_type, value, sku, units))
    sku_df = pl.DataFrame(
        out, schema={"id_type": pl.String, "id_value": pl.String, "sku": pl.String, "units_per_id": pl.Int64},
        orient="row",
    )
    packs = sku_df.group_by("sku").agg(pl.col("units_per_id").max().alias("case_pack"))

    lrows = _read_csv_rows(location_uri, ("system", "source_location", "location", "location_type"))
    lseen: dict[tuple[str, str], tuple[int, str]] = {}
    lout = []
    for line, row in lrows:
        system = (row["system"] or "").strip()
        src = (row["source_location"] or "").strip()
        loc = (row["location"] or "").strip()
        ltype = (row["location_type"] or "").strip()
        if not system or not src or not loc:
            raise CrosswalkError(
                f"{location_uri}: line {line}: system, source_location and location must not be empty"
            )
        key = (system, src)
        if key in lseen and lseen[key][1] != loc:
            raise CrosswalkError(
                f"{location_uri}: {system} location {src!r} is mapped twice: line {lseen[key][0]} -> "
                f"{lseen[key][1]}, line {line} -> {loc}"
            )
        if key not in lseen:
            lseen[key] = (line, loc)
            lout.append((system, src, loc, ltype))
    loc_df = pl.DataFrame(
        lout,
        schema={"system": pl.String, "source_location": pl.String, "location": pl.String, "location_type": pl.String},
        orient="row",
    )
    return Crosswalks(sku=sku_df, packs=packs, location=loc_df)


# `quarantine.raw` holds at most this many bytes of the record as written: a longer one is cut
# (at a character boundary) and ends with "…[cut: N bytes in all]".
RAW_MAX_BYTES = 4096


def cut_raw(head: bytes, size: int) -> str:
    """The first bytes of a `size`-byte record, as `quarantine.raw`: whole when it fits in
    RAW_MAX_BYTES, else cut at a character boundary and ending "…[cut: <size> bytes in all]"."""
    if size <= RAW_MAX_BYTES and len(head) == size:
        return head.decode("utf-8", errors="replace")
    marker = f"\u2026[cut: {size} bytes in all]"
    return head[: RAW_MAX_BYTES - len(marker.encode("utf-8"))].decode("utf-8", errors="ignore") + marker


def _cut(text: str) -> str:
    data = text.encode("utf-8")
    return cut_raw(data, len(data))


def _cap_series(values: pl.Series) -> pl.Series:
    values = values.cast(pl.String)
    long = (values.str.len_bytes() > RAW_MAX_BYTES).fill_null(False).arg_true()
    if not len(long):
        return values
    return values.scatter(long, pl.Series([_cut(t) for t in values.gather(long).to_list()], dtype=pl.String))


def cap_raw(col: pl.Expr) -> pl.Expr:
    """`col` (text) cut to RAW_MAX_BYTES bytes, with a marker saying it was cut and from what size.

    Example:
        >>> out = pl.select(cap_raw(pl.lit("x" * 5000))).item()
        >>> len(out.encode()), out[-30:]
        (4096, 'xxxxx…[cut: 5000 bytes in all]')
    """
    return col.map_batches(_cap_series, return_dtype=pl.String, is_elementwise=True)


def quarantine_rows(df: pl.DataFrame, code: str, reason: pl.Expr | str) -> pl.DataFrame:
    """Select the quarantine columns (locator, reason_code, reason, raw) of rejected rows.

    `raw` is capped at RAW_MAX_BYTES (`cap_raw`).
    """
    reason_expr = pl.lit(reason) if isinstance(reason, str) else reason
    return df.select(
        pl.col("_file").alias("file"),
        pl.col("_locator").alias("locator"),
        pl.lit(code).alias("reason_code"),
        reason_expr.cast(pl.String).alias("reason"),
        cap_raw(pl.col("_raw")).alias("raw"),
    )


def split_rows(df: pl.DataFrame, bad: pl.Expr) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(kept, rejected) rows of `df` by a total mask: every row lands on exactly one side.

    A null in `bad` (a comparison with a null operand, say) counts as bad: a row whose
    verdict is unknown is quarantined, never dropped from both sides.

    Example:
        >>> df = pl.DataFrame({"q": [1.0, None, 2.5]})
        >>> kept, bad = split_rows(df, pl.col("q") != pl.col("q").round(0))
        >>> kept["q"].to_list(), bad["q"].to_list()
        ([1.0], [None, 2.5])
    """
    mask = df.select(bad.fill_null(True).alias("_bad")).to_series()
    if not mask.any():
        return df, df.clear()
    return df.filter(~mask), df.filter(mask)


def reject(df: pl.DataFrame, bad: pl.Expr, code: str, reason: pl.Expr | str, rejected: list[pl.DataFrame]) -> pl.DataFrame:
    """Quarantine the rows where `bad` holds (or is null) into `rejected`; return the others.

    Args:
      df: rows with the `_file`, `_locator` and `_raw` columns of `quarantine_rows`.
      bad: a boolean expression over `df`; null counts as true (see `split_rows`).
      code: the reason code of the rejected rows.
      reason: their reason, a string or an expression over `df`.
      rejected: the list of quarantine frames to append to.
    """
    kept, bad_rows = split_rows(df, bad)
    if bad_rows.height:
        rejected.append(quarantine_rows(bad_rows, code, reason))
    return kept


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
        total = digits[:, :13].astype(np.int64) @ np.array(_GTIN_WEIGHTS, dtype=np.int64)
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
OUT_OF_RANGE = f"is out of range (more than {MAX_EACHES:.0e} eaches)"


def to_eaches(qty: pl.Expr, factor: pl.Expr) -> pl.Expr:
    """A quantity (text or a number column) times its unit factor, as whole eaches, exactly.

    Returns a struct expression with `eaches` (Int64, null when there is a problem) and
    `problem` (null when fine, else the words that finish "field qty: <value> ...":
    `NOT_A_NUMBER`, `OUT_OF_RANGE`, or "is 147.6 eaches, not a whole number"). Never null
    itself: every row has either eaches or a problem.

    Example:
        >>> df = pl.DataFrame({"q": ["12.5", "12.3", "1e308", "12x", " 7 "], "f": [12, 12, 1, 1, 1]})
        >>> df.select(to_eaches(pl.col("q"), pl.col("f")).alias("e")).unnest("e").rows()[:3]
        [(150, None), (None, 'is 147.6 eaches, not a whole number'), (None, 'is out of range (more than 1e+12 eaches)')]
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
TIMESTAMP_MIN = dt.datetime(1900, 1, 1, tzinfo=dt.timezone.utc)
TIMESTAMP_MAX = dt.datetime(2200, 1, 1, tzinfo=dt.timezone.utc)


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
    rows = _read_csv_rows(uri, ("sku",))
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
