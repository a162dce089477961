"""Load and validate the YAML config of DESIGN.md §4, once, before any pipeline is built.

The schema is `invrecon.schemas.config` (pydantic): an unknown key anywhere in the config or a
column mapping is an error naming its key path and the closest valid key, and `record_system`
must be the `system` of a positions source. Paths in the config are fsspec URLs relative to the
config file. Every problem raises `ConfigError` naming the file and the key path
(`sources[2].mapping`), which the CLI turns into exit code 2. A config or mapping that still holds
the `FILL_IN` placeholders of `invrecon init` is refused on one line naming every such key.
"""

from __future__ import annotations

import dataclasses
import hashlib
import posixpath
from typing import Any

import fsspec
import yaml
from pydantic import ValidationError

from invrecon.schemas.config import (
    POSITION_FIELDS,
    SOURCE_KINDS,
    TABULAR_FORMATS,
    Alerts,
    ConfigDoc,
    MappingDoc,
    Quality,
    SourceDoc,
    Streaming,
    error_messages,
)

__all__ = [
    "POSITION_FIELDS",
    "SOURCE_KINDS",
    "TABULAR_FORMATS",
    "Config",
    "ConfigError",
    "Mapping_",
    "PLACEHOLDER",
    "Quality",
    "Source",
    "Streaming",
    "ToleranceRule",
    "load_config",
    "read_yaml",
    "resolve",
    "validate",
]


class ConfigError(ValueError):
    """A config, mapping or crosswalk problem; the message names the file and key path."""


# What `invrecon init` writes where only the user knows the value. A config or column mapping that
# still holds it anywhere (a value, or a mapping's source column name) is refused, naming every
# key left to fill in, on one line.
PLACEHOLDER = "FILL_IN"


def _unfilled(doc: Any, path: str = "") -> list[str]:
    """The key paths (`sources[0].path`, `columns.FILL_IN_item_column`) that still hold PLACEHOLDER."""
    if isinstance(doc, dict):
        out = []
        for key, value in doc.items():
            sub = f"{path}.{key}" if path else str(key)
            out += [sub] if PLACEHOLDER in str(key) else _unfilled(value, sub)
        return out
    if isinstance(doc, list):
        return [p for i, v in enumerate(doc) for p in _unfilled(v, f"{path}[{i}]")]
    return [path] if isinstance(doc, str) and PLACEHOLDER in doc else []


def _refuse_unfilled(doc: Any, uri: str, *, note: str = "") -> None:
    keys = [k for k in _unfilled(doc) if k]  # a document that is one string is not a mapping: validation says so
    if keys:
        raise ConfigError(
            f"{uri}: not filled in yet: {', '.join(f'`{k}`' for k in keys)}{note} "
            f"(replace each {PLACEHOLDER} with your value; the comment above the key says what goes there)"
        )


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
    streaming: Streaming = Streaming()  # validated; pipelines.stock_stream.streaming_params reads it
    alerts: Alerts = Alerts()  # validated; pipelines.alerts.load_thresholds reads it

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


def read_yaml(uri: str, what: str) -> tuple[Any, bytes]:
    """The parsed YAML document at `uri` and its bytes; ConfigError naming the file when it cannot be.

    Args:
      uri: the file (an fsspec URL).
      what: what it is, for the message ("config", "column mapping").
    """
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


def validate(model, doc: Any, uri: str, *, note: str = "", context: dict | None = None) -> Any:
    """`doc` as a `model` instance (of `schemas.config`), else ConfigError with every problem, one a line.

    Args:
      model: the pydantic model of the document.
      doc: the parsed YAML.
      uri: the file, which starts every line of the error.
      note: said after each problem, e.g. which source's mapping it is.
      context: the validation context (a column mapping's `kind`).
    """
    try:
        return model.model_validate(doc, context=context)
    except ValidationError as e:
        raise ConfigError("\n".join(f"{uri}: {m}{note}" for m in error_messages(e))) from None


def _load_mapping(uri: str, kind: str, *, note: str = "") -> Mapping_:
    doc, _ = read_yaml(uri, "column mapping")
    _refuse_unfilled(doc, uri, note=note)
    mapping = validate(MappingDoc, doc, uri, note=note, context={"kind": kind})
    return Mapping_(
        columns=dict(mapping.columns),
        sku_id_type=mapping.id_types.sku,
        location_system=mapping.id_types.location,
        uri=uri,
    )


def _source(s: SourceDoc, i: int, uri: str) -> Source:
    mapping = None
    if s.kind in ("positions", "availability"):
        note = f" (the mapping of `sources[{i}]`, {s.name})"
        mapping = _load_mapping(resolve(uri, s.mapping), s.kind, note=note)
    return Source(
        name=s.name, kind=s.kind, path=resolve(uri, s.path), system=s.system, format=s.format, mapping=mapping,
        qualifiers=dict(s.qualifiers), suite=resolve(uri, s.expectations) if s.expectations else None,
    )


def load_config(uri: str) -> Config:
    """Read, validate and resolve a config file.

    Args:
      uri: the config YAML (an fsspec URL).

    Returns:
      The config with every path resolved against the config's folder and every column
      mapping loaded.

    Raises:
      ConfigError: naming the file and the key path of each problem found, e.g.
        "cfg.yaml: `tolerance` is not a config key; did you mean `tolerances`?".
    """
    doc, data = read_yaml(uri, "config")
    _refuse_unfilled(doc, uri)
    cfg = validate(ConfigDoc, doc, uri)
    tolerances = cfg.tolerances or []
    rules = tuple(
        ToleranceRule({k: v for k, v in t.match.model_dump().items() if v is not None}, t.abs, t.pct) for t in tolerances
    ) or (ToleranceRule({}, 0.0, 0.0),)
    return Config(
        uri=uri,
        sha256=hashlib.sha256(data).hexdigest(),
        timezone=cfg.timezone,
        record_system=cfg.record_system,
        sku_crosswalk=resolve(uri, cfg.crosswalks.sku),
        location_crosswalk=resolve(uri, cfg.crosswalks.location),
        items=resolve(uri, cfg.items),
        sources=tuple(_source(s, i, uri) for i, s in enumerate(cfg.sources)),
        tolerances=rules,
        output=resolve(uri, cfg.output.rstrip("/")),
        raw=doc,
        quality=cfg.quality or Quality(),
        streaming=cfg.streaming or Streaming(),
        alerts=cfg.alerts or Alerts(),
    )
