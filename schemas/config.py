"""The config schema (DESIGN.md §4): the YAML config and its column mappings, as pydantic models.

`pipelines.config.load_config` validates a parsed YAML document against `ConfigDoc` (and each
column mapping file against `MappingDoc`, given the kind of source that reads it as validation
context) and turns the `error_messages` of a failure into one `ConfigError`, one problem a line.
`AlertsDoc` is the `alerts:` section alone (`pipelines.alerts.parse_thresholds`), `EdiQualifiersDoc`
the part of a config `invrecon parse-edi --config` reads.
Every model refuses keys it does not define, naming the closest valid one:

    >>> schema_errors(ConfigDoc, {"timezone": "UTC", "record_system": "erp", "items": "i.csv",
    ...     "crosswalks": {"sku": "s.csv", "location": "l.csv"}, "tolerance": [],
    ...     "sources": [{"name": "e", "system": "erp", "kind": "positions", "format": "csv",
    ...                  "path": "e.csv", "mapping": "m.yaml"}]})
    ['`tolerance` is not a config key; did you mean `tolerances`?']

Values are strict (no string for a number, no `true` for a count); paths stay strings here and
are resolved against the config's folder by the loader.
"""

from __future__ import annotations

import difflib
import math
import zoneinfo
from collections.abc import Sequence
from typing import Annotated, Any, ClassVar

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, ValidationInfo, model_validator
from pydantic_core import PydanticCustomError

from invrecon.schemas import SEVERITIES

__all__ = [
    "POSITION_FIELDS",
    "SOURCE_KINDS",
    "TABULAR_FORMATS",
    "QTY_FIELD",
    "Alerts",
    "AlertsDoc",
    "ConfigDoc",
    "EdiQualifiersDoc",
    "MappingDoc",
    "Quality",
    "SourceDoc",
    "Streaming",
    "ToleranceDoc",
    "error_messages",
    "schema_errors",
]

# In-transit records come from EDI (856 / DESADV / 943), not from a source kind of their own.
SOURCE_KINDS = ("positions", "availability", "edi", "events")
TABULAR_FORMATS = ("csv", "parquet", "jsonl")
# Canonical fields a column mapping may target.
POSITION_FIELDS = ("sku", "location", "on_hand", "reserved", "available", "uom_source", "unit_cost", "as_of")
# The quantity a column mapping must map beside sku and location, by the kind of source reading it.
QTY_FIELD = {"positions": "on_hand", "availability": "available"}
# One custom error type carries every invrecon-worded message; `{path}` is filled in by _message.
_ERROR = "invrecon"


def _fail(text: str, **ctx: Any) -> PydanticCustomError:
    """A validation error worded `text`: `{path}` becomes the key path, `{prefix}` the path and a dot."""
    return PydanticCustomError(_ERROR, "{text}", {"text": text, **ctx})


def _hint(word: str, valid: Sequence[str]) -> str:
    """`; did you mean `x`?` for the closest of `valid`, else the list of them."""
    return _close(word, valid) or f"; expected one of {', '.join(valid)}"


def _one_of(values: Sequence[str]) -> AfterValidator:
    """A string that must be one of `values` (the error suggests the closest)."""

    def check(value: str) -> str:
        if value not in values:
            raise _fail(f"`{{path}}` is {value!r}; expected one of {', '.join(values)}{_close(value, values)}")
        return value

    return AfterValidator(check)


def _close(word: str, valid: Sequence[str]) -> str:
    """`; did you mean `x`?` for the closest of `valid` (difflib), else ""."""
    close = difflib.get_close_matches(word, list(valid), n=1, cutoff=0.6)
    return f"; did you mean `{close[0]}`?" if close else ""


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise _fail(f"`{{path}}` must be a finite number, got {value!r}")
    return value


Text = Annotated[str, BeforeValidator(lambda v: str(v) if isinstance(v, int) and not isinstance(v, bool) else v)]
NonNegative = Annotated[float, Field(ge=0), AfterValidator(_finite)]
Positive = Annotated[float, Field(gt=0), AfterValidator(_finite)]


class _Section(BaseModel):
    """A mapping with a fixed set of keys: an unknown key is an error naming the closest one."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
    NOUN: ClassVar[str] = "setting"
    # A whole document's message when it is not a mapping (None: a section's, "must be a mapping").
    NOT_A_MAPPING: ClassVar[str | None] = None

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            if cls.NOT_A_MAPPING:
                raise _fail(cls.NOT_A_MAPPING)
            return data
        valid = [f.alias or name for name, f in cls.model_fields.items()]
        unknown = [str(k) for k in data if k not in valid]
        if unknown:
            noun = f"an {cls.NOUN}" if cls.NOUN[0] in "aeiou" else f"a {cls.NOUN}"
            lines = [f"`{{prefix}}{k}` is not {noun}" + _hint(k, valid) for k in unknown]
            raise _fail(lines[0], unknown=lines)
        return data


class Crosswalks(_Section):
    NOUN: ClassVar[str] = "crosswalk"
    sku: str
    location: str


class ToleranceMatch(_Section):
    NOUN: ClassVar[str] = "field tolerances can match"
    abc_class: Text | None = None
    location_type: Text | None = None
    category: Text | None = None
    system: Text | None = None
    location: Text | None = None
    sku: Text | None = None


class ToleranceDoc(_Section):
    NOUN: ClassVar[str] = "tolerance setting"
    match: ToleranceMatch = ToleranceMatch()
    abs: NonNegative = 0.0
    pct: NonNegative = 0.0


class SourceDoc(_Section):
    NOUN: ClassVar[str] = "source setting"
    name: str
    kind: Annotated[str, _one_of(SOURCE_KINDS)]
    path: str
    system: str | None = None
    format: Annotated[str, _one_of(TABULAR_FORMATS)] | None = None
    mapping: str | None = None
    expectations: str | None = None  # an extra GX suite (JSON) for this source
    qualifiers: dict[str, str] = {}  # EDI qualifier -> id type

    @model_validator(mode="after")
    def _needs(self) -> SourceDoc:
        needed = {"positions": ("system", "format", "mapping"), "availability": ("system", "format", "mapping"), "edi": ("system",)}
        for key in needed.get(self.kind, ()):
            if getattr(self, key) is None:
                raise _fail(f"missing required key `{{prefix}}{key}` for {'an' if self.kind[0] in 'aeiou' else 'a'} {self.kind} source")
        return self


class Quality(_Section):
    """The `quality:` section: data-quality gate and history settings."""

    NOUN: ClassVar[str] = "quality setting"
    row_count_band: NonNegative = 0.5  # today's rows may differ from the last run's by this share
    max_as_of_lag_hours: NonNegative = 36.0  # how far a source's as-of may sit from the cut-off
    history_runs: Annotated[int, Field(ge=0)] = 10  # runs of metric history a new value is compared with
    history_k: NonNegative = 3.0  # standard deviations that make a metric an outlier
    history_min_runs: Annotated[int, Field(ge=0)] = 3  # fewer earlier runs than this: no verdict yet
    future_event_skew_hours: NonNegative = 48.0  # events later than the latest as-of + this: future_event
    min_share_of_history: Annotated[float, Field(ge=0, le=1), AfterValidator(_finite)] = 0.5  # of the median of the last runs' valid rows
    source_volume_severity: Annotated[str, _one_of(("critical", "warning"))] = "critical"  # a source below that share
    data_docs_runs: Annotated[int, Field(ge=0)] = 30  # runs whose Data Docs pages are kept (0: build none)


def _rule_input(value: Any) -> Any:
    """An alert rule is a number (its maximum) or a mapping; `null` is a forgotten threshold."""
    if value is None:
        raise _fail("`{path}` needs a threshold")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return {"max": value}
    if not isinstance(value, dict):
        raise _fail(f"`{{path}}` must be a number >= 0 or a mapping {{max, severity}}, got {value!r}")
    return value


class AlertRule(_Section):
    NOUN: ClassVar[str] = "setting of this rule"
    max: NonNegative | None = None
    severity: Annotated[str, _one_of(SEVERITIES)] | None = None

    @model_validator(mode="after")
    def _has_max(self) -> AlertRule:
        if self.max is None and not getattr(self, "by_system", None):
            raise _fail("missing required key `{prefix}max`")
        return self


class LagRule(AlertRule):
    by_system: dict[str, NonNegative] = {}  # system / availability channel -> hours


class Alerts(_Section):
    """The `alerts:` section (pipelines/alerts.py turns it into thresholds)."""

    NOUN: ClassVar[str] = "alert rule"
    unexplained_value_per_location: Annotated[AlertRule | None, BeforeValidator(_rule_input)] = None
    oversell_units_per_sku: Annotated[AlertRule | None, BeforeValidator(_rule_input)] = None
    discrepancy_age_days: Annotated[AlertRule | None, BeforeValidator(_rule_input)] = None
    source_lag_hours: Annotated[LagRule | None, BeforeValidator(_rule_input)] = None


class Streaming(_Section):
    """The `streaming:` section (pipelines/stock_stream.py turns it into StreamParams)."""

    NOUN: ClassVar[str] = "streaming setting"
    window_minutes: Positive | None = None
    allowed_lateness_minutes: NonNegative | None = None
    early_firing_seconds: Positive | None = None
    dedup_ttl_hours: Positive | None = None
    alert_systems: list[str] | None = None
    min_alert_abs: NonNegative | None = None
    gate_shards: Annotated[int, Field(gt=0)] | None = None
    events: str | None = None


def _timezone(value: str) -> str:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise _fail(f"`{{path}}` {value!r} is not an IANA time zone") from None
    return value


class ConfigDoc(_Section):
    """The whole config file (DESIGN.md §4)."""

    NOUN: ClassVar[str] = "config key"
    NOT_A_MAPPING: ClassVar[str | None] = "the config must be a YAML mapping"
    timezone: Annotated[str, AfterValidator(_timezone)]
    record_system: str
    crosswalks: Crosswalks
    items: str
    sources: list[SourceDoc]
    tolerances: list[ToleranceDoc] | None = None
    output: str = "out/"
    quality: Quality | None = None
    alerts: Alerts | None = None
    streaming: Streaming | None = None

    @model_validator(mode="after")
    def _consistent(self) -> ConfigDoc:
        seen: set[str] = set()
        for i, s in enumerate(self.sources):
            if s.name in seen:
                raise _fail(f"`sources[{i}].name` {s.name!r} is used twice")
            seen.add(s.name)
        systems = sorted({s.system for s in self.sources if s.kind == "positions" and s.system})
        if self.record_system not in systems:
            listed = f"positions systems: {', '.join(systems)}" if systems else "there is no positions source"
            raise _fail(
                f"`record_system` is {self.record_system!r}, which is not the `system` of a positions source ({listed})"
                + _close(self.record_system, systems),
            )
        return self


class MappingId(_Section):
    NOUN: ClassVar[str] = "id type key"
    sku: str = "sku"  # crosswalk id type of the item column
    location: str | None = None  # crosswalk system of the location column


def _column_keys(value: Any) -> Any:
    # A header such as 2024 reads as a YAML number; the column is still named "2024".
    return {str(k): v for k, v in value.items()} if isinstance(value, dict) else value


class MappingDoc(_Section):
    """A column mapping file: source column -> canonical field, and the crosswalk id types.

    Validated with `context={"kind": kind}` (positions or availability), it must also map a
    column to each field a source of that kind needs: sku, location, `QTY_FIELD[kind]` and as_of.
    """

    NOUN: ClassVar[str] = "mapping key"
    NOT_A_MAPPING: ClassVar[str | None] = "a column mapping must be a mapping with `columns`"
    columns: Annotated[dict[str, Annotated[str, _one_of(POSITION_FIELDS)]], BeforeValidator(_column_keys)]
    id_types: MappingId = MappingId()

    @model_validator(mode="after")
    def _maps_what_the_kind_needs(self, info: ValidationInfo) -> MappingDoc:
        kind = (info.context or {}).get("kind")
        if kind is None:
            return self
        targets = set(self.columns.values())
        for needed in ("sku", "location", QTY_FIELD[kind], "as_of"):
            if needed not in targets:
                raise _fail(f"`columns` must map a source column to `{needed}`")
        return self


class AlertsDoc(_Section):
    """A config's `alerts:` section alone, validated as in the whole config (key paths `alerts.<rule>`)."""

    NOUN: ClassVar[str] = "config key"
    alerts: Alerts | None = None


class EdiQualifierSource(BaseModel):
    """A source as `invrecon parse-edi --config` reads it: its kind and qualifiers, the rest unchecked."""

    model_config = ConfigDict(extra="ignore", strict=True, frozen=True)
    kind: str | None = None
    qualifiers: dict[str, str] | None = None  # EDI qualifier -> id type, as in `SourceDoc`


class EdiQualifiersDoc(BaseModel):
    """The part of a config `invrecon parse-edi --config` reads: the EDI sources' qualifier overrides.

    Only these keys are checked, so a config the batch would refuse elsewhere still serves:

        >>> EdiQualifiersDoc.model_validate({"sources": [{"kind": "edi", "qualifiers": {"UC": "gtin"}}]}).first_qualifiers()
        {'UC': 'gtin'}
    """

    model_config = ConfigDict(extra="ignore", strict=True, frozen=True)
    sources: list[EdiQualifierSource] | None = None

    def first_qualifiers(self) -> dict[str, str] | None:
        """The overrides of the first `kind: edi` source that has `qualifiers` (None: no such source)."""
        for source in self.sources or ():
            if source.kind == "edi" and source.qualifiers is not None:
                return dict(source.qualifiers)
        return None


# ----------------------------------------------------------------------------- error messages

_TYPES = {
    "string_type": "a string", "float_type": "a number", "float_parsing": "a number", "int_type": "a whole number",
    "int_parsing": "a whole number", "int_from_float": "a whole number", "dict_type": "a mapping", "model_type": "a mapping",
    "model_attributes_type": "a mapping", "list_type": "a list", "bool_type": "true or false",
}
_BOUNDS = {"greater_than": ("gt", ">"), "greater_than_equal": ("ge", ">="), "less_than": ("lt", "<"), "less_than_equal": ("le", "<=")}


def _path(loc: Sequence[int | str]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _message(err: dict) -> list[str]:
    """invrecon's wording of one pydantic error: the key path in backticks, then what is wrong."""
    ctx, kind = err.get("ctx") or {}, err["type"]
    path = _path(err["loc"])
    if kind == _ERROR:
        prefix = f"{path}." if path else ""
        return [line.replace("{prefix}", prefix).replace("{path}", path) for line in ctx.get("unknown") or [ctx["text"]]]
    got = f", got {err['input']!r}" if "input" in err else ""
    if kind == "missing":
        return [f"missing required key `{path}`"]
    if kind in _TYPES:
        return [f"`{path}` must be {_TYPES[kind]}{got}" if path else f"the file must be {_TYPES[kind]}{got}"]
    if kind in _BOUNDS:
        name, op = _BOUNDS[kind]
        return [f"`{path}` must be a number {op} {ctx[name]:g}{got}"]
    return [f"`{path}`: {err['msg']}{got}"]


def error_messages(error: ValidationError, *, limit: int = 20) -> list[str]:
    """invrecon's wording of a pydantic ValidationError: one message per problem, at most `limit`."""
    out: list[str] = []
    for err in error.errors(include_url=False):
        out += _message(err)
    return out[:limit]


def schema_errors(model: type[BaseModel], doc: Any, *, limit: int = 20) -> list[str]:
    """Validate `doc` against `model`; return one message per problem (none: valid).

    Args:
      model: `ConfigDoc` or `MappingDoc`.
      doc: the parsed YAML document.
      limit: at most this many messages.
    """
    try:
        model.model_validate(doc)
    except ValidationError as e:
        return error_messages(e, limit=limit)
    return []
