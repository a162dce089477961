"""Item and location crosswalks: every id a system sends mapped to one SKU and one location, loaded once per worker."""

from __future__ import annotations

import csv
import dataclasses
import functools
import hashlib
import io
from collections.abc import Iterable

import fsspec
import polars as pl

ID_TYPES = ("gtin", "erp_material", "vendor_part", "buyer_part", "store_item", "marketplace_sku", "sku")

# Unit codes that mean "one of the identified item". PC/PCE/UN/C62 are the X12 / EDIFACT / UN-ECE
# spellings partners really send for a piece.
UOM_EACH = frozenset({"EA", "EACH", "PC", "PCE", "UN", "UNIT", "C62", "EU", "EN", "PCS", ""})
# Case-like units: their size is the SKU's case pack from the crosswalk (the largest units_per_id
# of its ids), unless the id itself already names the case (units_per_id > 1).
UOM_CASE = frozenset({"CA", "CS", "CT", "CTN", "PK", "PKG", "BX", "CASE", "PACK"})
UOM_FIXED = {"DZ": 12, "DZN": 12, "GR": 144, "GRO": 144, "PR": 2, "PAI": 2}

# GTIN check digit weights for the 13 data digits of a GTIN-14, left to right.
GTIN_WEIGHTS = [3 if i % 2 == 0 else 1 for i in range(13)]


class CrosswalkError(ValueError):
    """A crosswalk that cannot be trusted: names the file and the conflicting lines."""


def gtin14_or_none(value: str) -> str | None:
    """Normalize a GTIN-8/12/13/14 to GTIN-14, or None when it is not a valid GTIN."""
    v = value.strip()
    if len(v) not in (8, 12, 13, 14) or not v.isdigit():
        return None
    v = v.zfill(14)
    total = sum(int(d) * w for d, w in zip(v[:13], GTIN_WEIGHTS))
    return v if (10 - total % 10) % 10 == int(v[13]) else None


def normalize_gtin_expr(col: pl.Expr) -> tuple[pl.Expr, pl.Expr]:
    """Vectorized GTIN normalization: (gtin14 or null, is_valid) expressions over `col`."""
    s = col.cast(pl.String).str.strip_chars()
    shape_ok = s.str.contains(r"^(\d{8}|\d{12}|\d{13}|\d{14})$").fill_null(False)
    padded = s.str.zfill(14)
    total = pl.sum_horizontal(
        [padded.str.slice(i, 1).cast(pl.Int32, strict=False) * w for i, w in enumerate(GTIN_WEIGHTS)]
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


def read_csv_rows(uri: str, required: Iterable[str]) -> list[tuple[int, dict[str, str]]]:
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
    sku = _load_sku_crosswalk(sku_uri)
    packs = sku.group_by("sku").agg(pl.col("units_per_id").max().alias("case_pack"))
    return Crosswalks(sku=sku, packs=packs, location=_load_location_crosswalk(location_uri))


def _load_sku_crosswalk(uri: str) -> pl.DataFrame:
    """id_type, id_value (normalized), sku, units_per_id: one row per distinct id; raises `CrosswalkError`."""
    seen: dict[tuple[str, str], tuple[int, str, int]] = {}
    out = []
    for line, row in read_csv_rows(uri, ("id_type", "id_value", "sku", "units_per_id")):
        id_type, raw_value, sku, value, units = _sku_row(uri, line, row)
        key = (id_type, value)
        if key in seen:
            first_line, first_sku, first_units = seen[key]
            if (first_sku, first_units) != (sku, units):
                raise CrosswalkError(
                    f"{uri}: {id_type} {raw_value!r} is mapped twice: line {first_line} -> "
                    f"{first_sku} x{first_units}, line {line} -> {sku} x{units}"
                )
            continue
        seen[key] = (line, sku, units)
        out.append((id_type, value, sku, units))
    return pl.DataFrame(
        out, schema={"id_type": pl.String, "id_value": pl.String, "sku": pl.String, "units_per_id": pl.Int64},
        orient="row",
    )


def _sku_row(uri: str, line: int, row: dict[str, str]) -> tuple[str, str, str, str, int]:
    """(id_type, id_value as written, sku, id_value normalized, units_per_id) of one checked row."""
    id_type = (row["id_type"] or "").strip()
    raw_value = (row["id_value"] or "").strip()
    sku = (row["sku"] or "").strip()
    if id_type not in ID_TYPES:
        raise CrosswalkError(
            f"{uri}: line {line}: field id_type: unknown id type {id_type!r}; "
            f"expected one of {', '.join(ID_TYPES)}"
        )
    if not raw_value or not sku:
        raise CrosswalkError(f"{uri}: line {line}: id_value and sku must not be empty")
    value = raw_value
    if id_type == "gtin":
        value = gtin14_or_none(raw_value) or ""
        if not value:
            raise CrosswalkError(
                f"{uri}: line {line}: field id_value: {raw_value!r} is not a valid GTIN "
                "(8, 12, 13 or 14 digits with a correct check digit)"
            )
    try:
        units = int(row["units_per_id"] or 1)
    except ValueError:
        raise CrosswalkError(
            f"{uri}: line {line}: field units_per_id: {row['units_per_id']!r} is not a whole number"
        ) from None
    if units <= 0:
        raise CrosswalkError(f"{uri}: line {line}: field units_per_id must be > 0")
    return id_type, raw_value, sku, value, units


def _load_location_crosswalk(uri: str) -> pl.DataFrame:
    """system, source_location, location, location_type: one row per (system, code); raises `CrosswalkError`."""
    seen: dict[tuple[str, str], tuple[int, str]] = {}
    out = []
    for line, row in read_csv_rows(uri, ("system", "source_location", "location", "location_type")):
        system = (row["system"] or "").strip()
        src = (row["source_location"] or "").strip()
        loc = (row["location"] or "").strip()
        ltype = (row["location_type"] or "").strip()
        if not system or not src or not loc:
            raise CrosswalkError(
                f"{uri}: line {line}: system, source_location and location must not be empty"
            )
        key = (system, src)
        if key in seen and seen[key][1] != loc:
            raise CrosswalkError(
                f"{uri}: {system} location {src!r} is mapped twice: line {seen[key][0]} -> "
                f"{seen[key][1]}, line {line} -> {loc}"
            )
        if key not in seen:
            seen[key] = (line, loc)
            out.append((system, src, loc, ltype))
    return pl.DataFrame(
        out,
        schema={"system": pl.String, "source_location": pl.String, "location": pl.String, "location_type": pl.String},
        orient="row",
    )
