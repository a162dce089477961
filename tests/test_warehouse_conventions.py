"""The analyst's warehouse conventions (issue 13 §4): exact money, ENUMs, comments on everything,
the items / locations dimensions, `invrecon sql --config`, and docs/warehouse.md from the registry."""

from __future__ import annotations

import csv
import decimal
import pathlib

import pytest
import yaml

from invrecon.pipelines import sql
from invrecon.pipelines.dimensions import items_table
from invrecon.pipelines.warehouse import connect
from invrecon.pipelines.warehouse_docs import ENUMS, EXAMPLES, RELATIONS, column_doc, render_markdown
from invrecon.schemas import DISCREPANCY_CLASSES
from tests.conftest import ROOT, WORLD, warehouse

DOCS = ROOT / "docs" / "warehouse.md"


def _columns(con) -> dict[tuple[str, str], tuple[str, str | None]]:
    """(relation, column) -> (data type, comment) of every column of the warehouse's own relations."""
    rows = con.execute("SELECT table_name, column_name, data_type, comment FROM duckdb_columns() WHERE NOT internal").fetchall()
    return {(t, c): (d, comment) for t, c, d, comment in rows}


def test_every_table_view_and_column_has_its_registry_comment(committed_run):
    con = warehouse(committed_run)
    columns = _columns(con)
    assert set(columns) == {(r, c) for r, rel in RELATIONS.items() for c in rel.columns}
    for (relation, column), (_, comment) in columns.items():
        unit, doc = column_doc(relation, column)
        assert comment == (f"{doc} Unit: {unit}." if unit else doc), (relation, column)
    views = dict(con.execute("SELECT view_name, comment FROM duckdb_views() WHERE NOT internal").fetchall())
    tables = dict(con.execute("SELECT table_name, comment FROM duckdb_tables() WHERE NOT internal").fetchall())
    assert {**views, **tables} == {name: rel.doc for name, rel in RELATIONS.items()}
    assert "other minus book" in columns[("discrepancies", "delta")][1]
    assert "other minus book" in columns[("discrepancies", "value_delta")][1]
    assert "Unit: money in `currency`, signed." in columns[("value_variance", "net_value")][1]
    types = dict(con.execute("SELECT type_name, comment FROM duckdb_types() WHERE comment IS NOT NULL").fetchall())
    assert set(types) == set(ENUMS)


def test_money_is_decimal_18_4_and_class_severity_are_enums(committed_run):
    columns = _columns(warehouse(committed_run))
    money = {k for k in columns if column_doc(*k)[0].startswith("money")}
    assert len(money) == 15 and ("discrepancies", "value_delta") in money and ("value_variance", "unexplained_net_value") in money
    assert {k: columns[k][0] for k in money} == {k: "DECIMAL(18,4)" for k in money}
    assert not any(d.startswith("DECIMAL") for k, (d, _) in columns.items() if k not in money)
    klass = "ENUM(" + ", ".join(f"'{c}'" for c in DISCREPANCY_CLASSES) + ")"
    severity = "ENUM('info', 'warning', 'critical')"
    assert {k: d for k, (d, _) in columns.items() if d.startswith("ENUM")} == {
        ("discrepancies", "class"): klass, ("discrepancy_summary", "class"): klass, ("discrepancy_aging", "class"): klass,
        ("alerts", "severity"): severity, ("dq_results", "severity"): severity,
    }


def test_money_sums_are_exact_and_sql_prints_them(committed_run, capsys):
    con = warehouse(committed_run)
    with (WORLD / "ground_truth" / "discrepancies.csv").open(newline="") as f:
        want = sum(decimal.Decimal(r["value_delta"]) for r in csv.DictReader(f))
    got = con.execute("SELECT sum(value_delta) FROM discrepancies").fetchall()[0][0]
    assert isinstance(got, decimal.Decimal) and got == want == decimal.Decimal("-11634.49")
    by_view = con.execute("SELECT sum(net_value), sum(gross_value) FROM discrepancy_summary").fetchall()[0]
    assert by_view[0] == want and by_view[1] == con.execute("SELECT sum(abs(value_delta)) FROM discrepancies").fetchall()[0][0]
    db = str(committed_run / "warehouse.duckdb")
    assert sql.main(["--warehouse", db, "SELECT sum(value_delta) AS net FROM discrepancies"]) == 0
    shown = capsys.readouterr().out
    assert "-11634.4900" in shown and "00000000" not in shown
    assert sql.main(["--warehouse", db, "--csv", "SELECT sum(value_delta) AS net FROM discrepancies"]) == 0
    assert capsys.readouterr().out.splitlines() == ["net", "-11634.4900"]
    # An ENUM filters with plain strings and sorts in the order the classes are applied.
    ordered = [r[0] for r in con.execute("SELECT DISTINCT class FROM discrepancies ORDER BY class").fetchall()]
    assert ordered == [c for c in DISCREPANCY_CLASSES if c in ordered]
    assert con.execute("SELECT count(*) FROM discrepancies WHERE class = 'qty_mismatch'").fetchall()[0][0] == 2


def test_discrepancies_join_items_and_locations(committed_run):
    con = warehouse(committed_run)
    with (WORLD / "master" / "items.csv").open(newline="") as f:
        master = {r["sku"]: r for r in csv.DictReader(f)}
    with (WORLD / "crosswalk" / "location.csv").open(newline="") as f:
        types = {}
        for r in csv.DictReader(f):
            types.setdefault(r["location"], r["location_type"])
    assert con.execute("SELECT count(*), count(DISTINCT sku) FROM items").fetchall()[0] == (len(master), len(master))
    assert dict(con.execute("SELECT location, location_type FROM locations").fetchall()) == types
    rows = con.execute("""
        SELECT d.sku, d.location, d.location_type, i.description, i.category, i.abc_class, i.unit_cost, l.location_type, l.codes
        FROM discrepancies d LEFT JOIN items i USING (sku) LEFT JOIN locations l USING (location)""").fetchall()
    assert len(rows) == con.execute("SELECT count(*) FROM discrepancies").fetchall()[0][0] == 22
    for sku, loc, d_type, desc, category, abc, cost, l_type, codes in rows:
        m = master[sku]
        assert (desc, category, abc, cost) == (m["description"], m["category"], m["abc_class"], decimal.Decimal(m["unit_cost"]))
        assert l_type == d_type == types[loc] and "erp" in {c["system"] for c in codes}
    gtin = con.execute("SELECT sku FROM (SELECT sku, unnest(ids) AS id FROM items) WHERE id.id_value = '00070000000003'").fetchall()
    assert gtin == [("SKU000000",)]


def test_every_example_query_answers(committed_run):
    con = warehouse(committed_run)
    answered = {title: con.execute(sql_text).fetchall() for title, sql_text in EXAMPLES}
    joined = answered["Discrepancies with item and location attributes (the dimensions)"]
    assert len(joined) == 4 and all(r[1] and r[5] for r in joined)  # description and location_type joined


def test_docs_warehouse_md_is_generated_from_the_registry(committed_run):
    con = connect(str(committed_run / "warehouse.duckdb"))
    want = render_markdown(con)
    assert DOCS.read_text() == want, (
        "docs/warehouse.md is out of date: python -m invrecon.pipelines.warehouse_docs --warehouse OUT/warehouse.duckdb > docs/warehouse.md")
    for name, rel in RELATIONS.items():
        assert f"### `{name}`" in want and rel.doc in want


def test_items_master_gaps_stay_visible(tmp_path):
    (tmp_path / "items.csv").write_text("sku,description,category,abc_class,unit_cost,currency\nA,Apple,fruit,A,1.25,EUR\n")
    (tmp_path / "sku.csv").write_text("id_type,id_value,sku,units_per_id\nsku,A,A,1\nsku,B,B,1\nvendor_part,B-6,B,6\n")
    (tmp_path / "location.csv").write_text("system,source_location,location,location_type\nerp,1,L1,store\n")
    rows = items_table(str(tmp_path / "items.csv"), str(tmp_path / "sku.csv"), str(tmp_path / "location.csv")).to_pylist()
    assert [(r["sku"], r["description"], r["in_master"], r["safety_stock"]) for r in rows] == [("A", "Apple", True, 0), ("B", None, False, None)]
    assert rows[1]["ids"] == [{"id_type": "sku", "id_value": "B", "units_per_id": 1}, {"id_type": "vendor_part", "id_value": "B-6", "units_per_id": 6}]


# ----------------------------------------------------------------------------- invrecon sql --config


def _config_with_output(world: pathlib.Path, output: str) -> pathlib.Path:
    cfg = world / "config.yaml"
    doc = yaml.safe_load(cfg.read_text())
    doc["output"] = output
    cfg.write_text(yaml.safe_dump(doc, sort_keys=False))
    return cfg


def test_sql_config_opens_the_warehouse_the_batch_wrote(committed_run, world_copy, capsys):
    cfg = _config_with_output(world_copy, str(committed_run))
    assert sql.main(["--config", str(cfg), "--csv", "SELECT count(*) AS n FROM discrepancies"]) == 0
    assert capsys.readouterr().out.splitlines() == ["n", "22"]


@pytest.mark.parametrize("output, said", [
    ("never-run", "no warehouse at {world}/never-run/warehouse.duckdb (run `invrecon batch --config"),
    ("memory://bucket/out", "is memory://bucket/out, not a local folder: the batch keeps no warehouse there"),
])
def test_sql_config_without_a_warehouse_is_one_line_exit_2(world_copy, capsys, output, said):
    cfg = _config_with_output(world_copy, output)
    assert sql.main(["--config", str(cfg), "SELECT 1"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and len(captured.err.splitlines()) == 1
    assert said.format(world=world_copy) in captured.err


def test_sql_on_a_file_that_is_not_a_warehouse_is_one_line_exit_2(tmp_path, capsys):
    bad = tmp_path / "warehouse.duckdb"
    bad.write_text("not a database")
    assert sql.main(["--warehouse", str(bad), "SELECT 1"]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and err.startswith(f"invrecon sql: cannot open {bad}:")
