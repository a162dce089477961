"""Load and validate the YAML config of DESIGN.md §4, once, before any pipeline is built.

Paths in the config are fsspec URLs relative to the config file. Every problem raises
`ConfigError` naming the file and the key path (`sources[2].mapping`), which the CLI turns into
exit code 2.
"""

from __future__ import annotations

import dataclasses
import hashlib
import posixpath
import zoneinfo
from collections.abc import Mapping
from typing import Any

import fsspec
import yaml

__all__ = [
    "Config",
    "ConfigError",
    "Mapping_",
    "Quality",
    "Source",
    "ToleranceRule",
    "load_config",
    "resolve",
]

SOURCE_KINDS = ("positions", "availability", "edi", "events", "in_transit")
TABULAR_FORMATS = ("csv", "parquet", "jsonl")
# Canonical fields a column mapping may target, per source kind.
POSITION_FIELDS = {
    "sku", "location", "on_hand", "reserved", "available", "uom_source", "unit_cost", "as_of",
}


class ConfigError(ValueError):
    """A config, mapping or crosswalk problem; the message names the file and key path."""


@dataclasses.dataclass(frozen=True)
class Mapping_:
    """A column mapping: source column -> canonical field, and the crosswalk id types."""

    columns: dict[str, str]
    sku_id_type: str
    location_system: str | None
    uri: str


@dataclasses.dataclass(frozen=True)
class Source:
    name: str
    kind: str
    path: str  # fsspec URL pattern with {run_date}
    system: str | None = None
    format: str | None = None
    mapping: Mapping_ | None = None
    qualifiers: dict[str, str] = dataclasses.field(default_factory=dict)
    suite: str | None = None  # an extra GX suite for this source (URL), beside its record type's


@dataclasses.dataclass(frozen=True)
class Quality:
    """The `quality:` section: data-quality gate and history settings."""

    row_count_band: float = 0.5  # today's rows may differ from the last run's by this share
    max_as_of_lag_hours: float = 36.0  # how far a source's as-of may sit from the cut-off
    history_runs: int = 10  # runs of metric history a new value is compared with
    history_k: float = 3.0  # standard deviations that make a metric an outlier
    history_min_runs: int = 3  # fewer earlier runs than this: no verdict yet
    min_share_of_history: float = 0.5  # a source below this share of its recent median fails the gate
    source_volume_severity: str = "critical"  # or "warning": too few valid records only warns


@dataclasses.dataclass(frozen=True)
class ToleranceRule:
    match: dict[str, str]
    abs: float
    pct: float


@dataclasses.dataclass(frozen=True)
class Config:
    uri: str
    sha256: str
    timezone: str
    record_system: str
    sku_crosswalk: str
    location_crosswalk: str
    items: str
    sources: tuple[Source, ...]
    tolerances: tuple[ToleranceRule, ...]
    output: str
    raw: dict[str, Any]
    quality: Quality = Quality()

    def source(self, name: str) -> Source:
        for s in self.sources:
            if s.name == name:
                return s
        raise KeyError(name)


def resolve(base_uri: str, path: str) -> str:
    """Resolve `path` against the folder of `base_uri` unless it is absolute or has a scheme."""
    if "://" in path or path.startswith("/"):
        return path
    base = base_uri.rsplit("/", 1)[0] if "/" in base_uri else "."
    if "://" in base:
        scheme, rest = base.split("://", 1)
        return f"{scheme}://{posixpath.normpath(posixpath.join(rest, path))}"
    return posixpath.normpath(posixpath.join(base, path))


def _read_yaml(uri: str, what: str) -> tuple[Any, bytes]:
    try:
        with fsspec.open(uri, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise ConfigError(f"{uri}: {what} not found") from None
    except OSError as e:
        raise ConfigError(f"{uri}: cannot read {what}: {e}") from None
    try:
        # safe_load: a config is input too; no Python objects are ever built from it.
        return yaml.safe_load(data), data
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{uri}:{where}: invalid YAML: {getattr(e, 'problem', e)}") from None


def _need(d: Mapping, key: str, where: str, uri: str, kind: type | tuple = str) -> Any:
    if not isinstance(d, Mapping) or key not in d or d[key] is None:
        raise ConfigError(f"{uri}: missing required key `{where}{key}`")
    value = d[key]
    if not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise ConfigError(f"{uri}: `{where}{key}` must be a {names}, got {value!r}")
    return value


def _load_mapping(uri: str, kind: str) -> Mapping_:
    doc, _ = _read_yaml(uri, "column mapping")
    if not isinstance(doc, dict):
        raise ConfigError(f"{uri}: a column mapping must be a mapping with `columns`")
    columns = _need(doc, "columns", "", uri, dict)
    allowed = POSITION_FIELDS
    for src, dst in columns.items():
        if dst not in allowed:
            raise ConfigError(
                f"{uri}: `columns.{src}` maps to unknown field {dst!r}; "
                f"expected one of {sorted(allowed)}"
            )
    targets = set(columns.values())
    qty_field = "available" if kind == "availability" else "on_hand"
    for needed in ("sku", "location", qty_field):
        if needed not in targets:
            raise ConfigError(f"{uri}: `columns` must map a source column to `{needed}`")
    id_types = doc.get("id_types") or {}
    if not isinstance(id_types, dict):
        raise ConfigError(f"{uri}: `id_types` must be a mapping")
    return Mapping_(
        columns={str(k): str(v) for k, v in columns.items()},
        sku_id_type=str(id_types.get("sku", "sku")),
        location_system=id_types.get("location"),
        uri=uri,
    )


def load_config(uri: str) -> Config:
    """Read, validate and resolve a config file.

    Raises:
      ConfigError: naming the file and key path of the first problem found.
    """
    doc, data = _read_yaml(uri, "config")
    if not isinstance(doc, dict):
        raise ConfigError(f"{uri}: the config must be a YAML mapping")
    tz = _need(doc, "timezone", "", uri)
    try:
        zoneinfo.ZoneInfo(tz)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"{uri}: `timezone` {tz!r} is not an IANA time zone") from None
    record_system = _need(doc, "record_system", "", uri)
    crosswalks = _need(doc, "crosswalks", "", uri, dict)
    sku_cw = resolve(uri, _need(crosswalks, "sku", "crosswalks.", uri))
    loc_cw = resolve(uri, _need(crosswalks, "location", "crosswalks.", uri))
    items = resolve(uri, _need(doc, "items", "", uri))
    raw_sources = _need(doc, "sources", "", uri, list)
    sources = []
    seen = set()
    for i, s in enumerate(raw_sources):
        where = f"sources[{i}]."
        name = _need(s, "name", where, uri)
        if name in seen:
            raise ConfigError(f"{uri}: `{where}name` {name!r} is used twice")
        seen.add(name)
        kind = _need(s, "kind", where, uri)
        if kind not in SOURCE_KINDS:
            raise ConfigError(
                f"{uri}: `{where}kind` is {kind!r}; expected one of {', '.join(SOURCE_KINDS)}"
            )
        path = resolve(uri, _need(s, "path", where, uri))
        system = s.get("system")
        if kind in ("positions", "availability", "edi") and not system:
            raise ConfigError(f"{uri}: missing required key `{where}system` for a {kind} source")
        fmt = s.get("format")
        mapping = None
        if kind in ("positions", "availability"):
            fmt = _need(s, "format", where, uri)
            if fmt not in TABULAR_FORMATS:
                raise ConfigError(
                    f"{uri}: `{where}format` is {fmt!r}; expected one of {', '.join(TABULAR_FORMATS)}"
                )
            mapping = _load_mapping(resolve(uri, _need(s, "mapping", where, uri)), kind)
        suite = s.get("expectations")
        if suite is not None and not isinstance(suite, str):
            raise ConfigError(f"{uri}: `{where}expectations` must be the path of a GX suite JSON file")
        qualifiers = s.get("qualifiers") or {}
        if not isinstance(qualifiers, dict):
            raise ConfigError(f"{uri}: `{where}qualifiers` must be a mapping of EDI qualifier -> id type")
        sources.append(
            Source(
                name=name, kind=kind, path=path, system=system, format=fmt, mapping=mapping,
                qualifiers={str(k): str(v) for k, v in qualifiers.items()},
                suite=resolve(uri, suite) if suite else None,
            )
        )
    rules = []
    for i, t in enumerate(doc.get("tolerances") or [{"match": {}, "abs": 0, "pct": 0}]):
        where = f"tolerances[{i}]."
        match = t.get("match") or {} if isinstance(t, dict) else None
        if not isinstance(match, dict):
            raise ConfigError(f"{uri}: `{where}match` must be a mapping")
        for key in match:
            if key not in ("abc_class", "location_type", "category", "system", "location", "sku"):
                raise ConfigError(f"{uri}: `{where}match.{key}` is not a field tolerances can match")
        try:
            abs_, pct = float(t.get("abs", 0)), float(t.get("pct", 0))
        except (TypeError, ValueError):
            raise ConfigError(f"{uri}: `{where}abs` and `{where}pct` must be numbers") from None
        if abs_ < 0 or pct < 0:
            raise ConfigError(f"{uri}: `{where}abs` and `{where}pct` must be >= 0")
        rules.append(ToleranceRule({str(k): str(v) for k, v in match.items()}, abs_, pct))
    output = resolve(uri, str(doc.get("output", "out/")).rstrip("/"))
    quality = _load_quality(doc.get("quality") or {}, uri)
    return Config(
        uri=uri,
        sha256=hashlib.sha256(data).hexdigest(),
        timezone=tz,
        record_system=record_system,
        sku_crosswalk=sku_cw,
        location_crosswalk=loc_cw,
        items=items,
        sources=tuple(sources),
        tolerances=tuple(rules),
        output=output,
        raw=doc,
        quality=quality,
    )


def _load_quality(q: Any, uri: str) -> Quality:
    if not isinstance(q, dict):
        raise ConfigError(f"{uri}: `quality` must be a mapping")
    known = {f.name: f for f in dataclasses.fields(Quality)}
    values = {}
    for key, value in q.items():
        if key not in known:
            raise ConfigError(f"{uri}: `quality.{key}` is not a setting; expected one of {', '.join(known)}")
        if key == "source_volume_severity":
            if value not in ("critical", "warning"):
                raise ConfigError(f"{uri}: `quality.{key}` must be critical or warning, got {value!r}")
            values[key] = value
            continue
        kind = int if known[key].type == "int" else float
        try:
            values[key] = kind(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{uri}: `quality.{key}` must be a number, got {value!r}") from None
        if values[key] < 0:
            raise ConfigError(f"{uri}: `quality.{key}` must be >= 0")
    return Quality(**values)
