"""The config schema (DESIGN.md §4, issue 12 §3): unknown keys and wrong values are refused.

Every error is a ConfigError naming the file and the key path, with the closest valid key when
there is one; the CLI turns it into exit 2 before any work starts.
"""

from __future__ import annotations

import pathlib

import pytest
import yaml

from invrecon.pipelines.config import ConfigError, Quality, load_config
from tests.conftest import WORLD, run_batch


def _write(world: pathlib.Path, change) -> pathlib.Path:
    cfg = world / "config.yaml"
    doc = yaml.safe_load(cfg.read_text())
    change(doc)
    cfg.write_text(yaml.safe_dump(doc, sort_keys=False))
    return cfg


def _error(world: pathlib.Path, change) -> str:
    cfg = _write(world, change)
    with pytest.raises(ConfigError) as e:
        load_config(str(cfg))
    return str(e.value)


def test_the_committed_config_is_valid_and_quality_has_its_defaults():
    cfg = load_config(str(WORLD / "config.yaml"))
    assert cfg.quality == Quality()
    q = cfg.quality
    assert (q.future_event_skew_hours, q.min_share_of_history, q.source_volume_severity) == (48.0, 0.5, "critical")
    assert (q.row_count_band, q.max_as_of_lag_hours, q.history_runs, q.history_k, q.history_min_runs) == (0.5, 36.0, 10, 3.0, 3)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.__setitem__("tolerance", d.pop("tolerances")), "`tolerance` is not a config key; did you mean `tolerances`?"),
        (lambda d: d.__setitem__("outptu", "elsewhere/"), "`outptu` is not a config key; did you mean `output`?"),
        (lambda d: d["sources"][2].__setitem__("expectation", "quality/store_counts.json"), "`sources[2].expectation` is not a source setting; did you mean `expectations`?"),
        (lambda d: d["tolerances"][1].__setitem__("pcnt", 0.5), "`tolerances[1].pcnt` is not a tolerance setting; did you mean `pct`?"),
        (lambda d: d["tolerances"][1]["match"].__setitem__("location_typ", "dc"), "`tolerances[1].match.location_typ` is not a field tolerances can match; did you mean `location_type`?"),
        (lambda d: d["crosswalks"].__setitem__("skus", "crosswalk/sku.csv"), "`crosswalks.skus` is not a crosswalk; did you mean `sku`?"),
        (lambda d: d.__setitem__("quality", {"row_count_bnd": 0.2}), "`quality.row_count_bnd` is not a quality setting; did you mean `row_count_band`?"),
        (lambda d: d.__setitem__("quality", {"min_share_of_histroy": 0.2}), "`quality.min_share_of_histroy` is not a quality setting; did you mean `min_share_of_history`?"),
        (lambda d: d["alerts"].__setitem__("oversell_unit_per_sku", 3), "`alerts.oversell_unit_per_sku` is not an alert rule; did you mean `oversell_units_per_sku`?"),
        (lambda d: d["alerts"]["source_lag_hours"].__setitem__("by_sytem", {"store": 3}), "`alerts.source_lag_hours.by_sytem` is not a setting of this rule; did you mean `by_system`?"),
        (lambda d: d.__setitem__("streaming", {"windw_minutes": 5}), "`streaming.windw_minutes` is not a streaming setting; did you mean `window_minutes`?"),
    ],
)
def test_an_unknown_key_names_its_path_and_the_closest_key(world_copy, change, message):
    err = _error(world_copy, change)
    assert err.startswith(f"{world_copy / 'config.yaml'}: ") and message in err


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.__setitem__("record_system", "erpp"), "`record_system` is 'erpp', which is not the `system` of a positions source (positions systems: erp, store); did you mean `erp`?"),
        (lambda d: d.__setitem__("record_system", "wms"), "`record_system` is 'wms', which is not the `system` of a positions source"),
        (lambda d: d["sources"][0].__setitem__("kind", "position"), "`sources[0].kind` is 'position'; expected one of positions, availability, edi, events; did you mean `positions`?"),
        (lambda d: d["sources"][0].__setitem__("kind", "in_transit"), "`sources[0].kind` is 'in_transit'; expected one of positions, availability, edi, events"),
        (lambda d: d["sources"][0].pop("mapping"), "missing required key `sources[0].mapping` for a positions source"),
        (lambda d: d["tolerances"][1].__setitem__("pct", "2%"), "`tolerances[1].pct` must be a number, got '2%'"),
        (lambda d: d.__setitem__("quality", {"history_runs": 2.5}), "`quality.history_runs` must be a whole number, got 2.5"),
        (lambda d: d.__setitem__("quality", {"min_share_of_history": 1.5}), "`quality.min_share_of_history` must be a number <= 1, got 1.5"),
        (lambda d: d.__setitem__("quality", {"future_event_skew_hours": -1}), "`quality.future_event_skew_hours` must be a number >= 0, got -1"),
        (lambda d: d.__setitem__("quality", {"data_docs_runs": -1}), "`quality.data_docs_runs` must be a number >= 0, got -1"),
        (lambda d: d.__setitem__("quality", {"source_volume_severity": "warn"}), "`quality.source_volume_severity` is 'warn'; expected one of critical, warning; did you mean `warning`?"),
        (lambda d: d["alerts"].__setitem__("oversell_units_per_sku", "lots"), "`alerts.oversell_units_per_sku` must be a number >= 0 or a mapping {max, severity}, got 'lots'"),
        (lambda d: d["alerts"].__setitem__("oversell_units_per_sku", None), "`alerts.oversell_units_per_sku` needs a threshold"),
        (lambda d: d["alerts"].__setitem__("discrepancy_age_days", {"severity": "warning"}), "missing required key `alerts.discrepancy_age_days.max`"),
        (lambda d: d.__setitem__("streaming", {"gate_shards": 0}), "`streaming.gate_shards` must be a number > 0, got 0"),
    ],
)
def test_a_bad_value_names_its_path(world_copy, change, message):
    assert message in _error(world_copy, change)


def test_every_problem_is_listed_one_a_line(world_copy):
    err = _error(world_copy, lambda d: (d.__setitem__("quality", {"history_k": "3"}), d["tolerances"][0].__setitem__("abs", -1)))
    lines = err.splitlines()
    assert len(lines) == 2 and all(line.startswith(str(world_copy / "config.yaml")) for line in lines)
    assert "`tolerances[0].abs` must be a number >= 0, got -1" in lines[0] and "`quality.history_k` must be a number, got '3'" in lines[1]


def test_the_new_quality_keys_are_read(world_copy):
    cfg = _write(world_copy, lambda d: d.__setitem__("quality", {"future_event_skew_hours": 6, "min_share_of_history": 0.25, "source_volume_severity": "warning"}))
    q = load_config(str(cfg)).quality
    assert (q.future_event_skew_hours, q.min_share_of_history, q.source_volume_severity) == (6.0, 0.25, "warning")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("columns: {MATNR: sku, WERKS: location, LABST: onhand}\nid_types: {sku: erp_material, location: erp}\n",
         "`columns.LABST` is 'onhand'; expected one of sku, location, on_hand, reserved, available, uom_source, unit_cost, as_of; did you mean `on_hand`?"),
        ("columns: {MATNR: sku, WERKS: location, LABST: on_hand}\nid_type: {sku: erp_material, location: erp}\n",
         "`id_type` is not a mapping key; did you mean `id_types`?"),
        ("columns: {MATNR: sku, WERKS: location, LABST: on_hand}\nid_types: {sku: erp_material, locaton: erp}\n",
         "`id_types.locaton` is not an id type key; did you mean `location`?"),
    ],
)
def test_a_column_mapping_is_held_to_its_schema_too(world_copy, text, message):
    mapping = world_copy / "mappings" / "erp.yaml"
    mapping.write_text(text)
    with pytest.raises(ConfigError) as e:
        load_config(str(world_copy / "config.yaml"))
    err = str(e.value)
    assert err.startswith(f"{mapping}: ") and message in err and "(the mapping of `sources[0]`, erp_nightly)" in err


def test_yaml_tags_are_still_refused(world_copy):
    (world_copy / "mappings" / "erp.yaml").write_text("columns: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_config(str(world_copy / "config.yaml"))


def test_batch_exits_2_on_an_unknown_key_before_any_work(world_copy, tmp_path, capsys):
    cfg = _write(world_copy, lambda d: d.__setitem__("tolerance", d.pop("tolerances")))
    out = tmp_path / "out"
    assert run_batch(cfg, output=out) == 2
    err = capsys.readouterr().err
    assert "config error" in err and str(cfg) in err and "`tolerance` is not a config key; did you mean `tolerances`?" in err
    assert not out.exists()


@pytest.mark.parametrize(
    ("source", "text", "message"),
    [
        (0, "columns: {MATNR: sku, WERKS: location}\nid_types: {sku: erp_material, location: erp}\n", "`columns` must map a source column to `on_hand`"),
        (0, "columns: {WERKS: location, LABST: on_hand}\n", "`columns` must map a source column to `sku`"),
        # Without as_of a figure has no time to roll from: refused here, not a reader_error per row.
        (0, "columns: {MATNR: sku, WERKS: location, LABST: on_hand}\n", "`columns` must map a source column to `as_of`"),
        (0, "- MATNR\n- WERKS\n", "a column mapping must be a mapping with `columns`"),
    ],
)
def test_a_column_mapping_maps_what_its_kind_of_source_needs(world_copy, source, text, message):
    """The kind of the source that reads a mapping is its validation context (`MappingDoc`)."""
    cfg = load_config(str(world_copy / "config.yaml"))
    mapping = pathlib.Path(cfg.sources[source].mapping.uri)
    mapping.write_text(text)
    with pytest.raises(ConfigError) as e:
        load_config(str(world_copy / "config.yaml"))
    assert str(e.value) == f"{mapping}: {message} (the mapping of `sources[{source}]`, {cfg.sources[source].name})"


def test_an_availability_mapping_maps_available_not_on_hand():
    from invrecon.schemas.config import MappingDoc, schema_errors

    doc = {"columns": {"item": "sku", "node": "location", "qty": "available", "ts": "as_of"}}
    assert MappingDoc.model_validate(doc, context={"kind": "availability"}).columns["qty"] == "available"
    with pytest.raises(ValueError, match="`columns` must map a source column to `on_hand`"):
        MappingDoc.model_validate(doc, context={"kind": "positions"})
    assert schema_errors(MappingDoc, doc) == []  # without a kind, only the file's own shape is checked


def test_a_config_that_is_not_a_mapping_says_so(tmp_path):
    cfg = tmp_path / "config.yaml"
    cfg.write_text("- sources\n")
    with pytest.raises(ConfigError) as e:
        load_config(str(cfg))
    assert str(e.value) == f"{cfg}: the config must be a YAML mapping"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("sources: {not: a list}\n", "`sources` must be a list, got {'not': 'a list'}"),
        ("sources:\n  - {kind: edi, qualifiers: {UC: 5}}\n", "`sources[0].qualifiers.UC` must be a string, got 5"),
        ("- 1\n", "the file must be a mapping, got [1]"),
        ("sources: [\n", "line 2, column 1: invalid YAML"),
    ],
)
def test_parse_edi_reads_its_config_through_the_schema(tmp_path, capsys, text, message):
    """`invrecon parse-edi --config` checks the keys it reads as the batch does: one line naming the file."""
    from invrecon.pipelines import parse_edi

    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(text)
    assert parse_edi.main([str(WORLD / "config.yaml"), "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"invrecon parse-edi: config error: {cfg}:") and message in err and len(err.splitlines()) == 1


def test_the_schemas_doc_examples():
    import doctest

    from invrecon.pipelines import alerts
    from invrecon.schemas import config

    assert doctest.testmod(config).failed == 0 and doctest.testmod(alerts).failed == 0
