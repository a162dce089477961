"""The batch CLI as a scheduler sees it: exit codes, error messages, hostile input files."""

from __future__ import annotations

import hashlib
import pathlib

import duckdb
import pytest

from invrecon.fixtures.generator import WorldSpec, generate
from tests.conftest import RUN_DATE, run_batch, warehouse


def _tree_digest(root: pathlib.Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(root)).encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


def test_fixtures_are_deterministic(tmp_path):
    spec = WorldSpec(skus=20, locations=4, days=2, seed=3)
    generate(tmp_path / "a", spec)
    generate(tmp_path / "b", spec)
    assert _tree_digest(tmp_path / "a") == _tree_digest(tmp_path / "b")
    generate(tmp_path / "c", WorldSpec(skus=20, locations=4, days=2, seed=4))
    assert _tree_digest(tmp_path / "a") != _tree_digest(tmp_path / "c")


def test_config_error_names_the_key_path(world_copy, tmp_path, capsys):
    cfg = world_copy / "config.yaml"
    cfg.write_text(cfg.read_text().replace("kind: positions", "kind: posit", 1))
    assert run_batch(cfg, output=tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert "config.yaml" in err and "sources[0].kind" in err and "'posit'" in err


def test_unsafe_yaml_is_refused(world_copy, tmp_path, capsys):
    cfg = world_copy / "config.yaml"
    cfg.write_text("!!python/object/apply:os.system ['echo pwned']\n")
    assert run_batch(cfg, output=tmp_path / "out") == 2
    assert "invalid YAML" in capsys.readouterr().err


def test_duplicate_crosswalk_row_is_exit_2_naming_both_lines(world_copy, tmp_path, capsys):
    sku = world_copy / "crosswalk" / "sku.csv"
    lines = sku.read_text().splitlines()
    first = lines[1].split(",")
    lines.append(f"{first[0]},{first[1]},SKU999999,1")
    sku.write_text("\n".join(lines) + "\n")
    assert run_batch(world_copy / "config.yaml", output=tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert "sku.csv" in err and "line 2" in err and f"line {len(lines)}" in err and "SKU999999" in err


def test_missing_inputs_for_the_run_date_is_exit_4(world_copy, tmp_path, capsys):
    assert run_batch(world_copy / "config.yaml", "2026-12-25", output=tmp_path / "out") == 4
    err = capsys.readouterr().err
    assert "erp_nightly" in err and "inputs/erp/2026-12-25/*.csv" in err


def test_bad_run_date_is_exit_2(world_copy, tmp_path, capsys):
    assert run_batch(world_copy / "config.yaml", "30/11/2026", output=tmp_path / "out") == 2
    assert "--run-date" in capsys.readouterr().err


def test_hostile_files_are_quarantined_and_the_rest_still_loads(world_copy, tmp_path):
    day = world_copy / "inputs"
    (day / "store" / RUN_DATE / "store_9999.parquet").write_bytes(b"PAR1 this is not parquet at all")
    (day / "erp" / RUN_DATE / "extra.csv").write_bytes(b"\x00\x01\x02 binary \xff\xfe garbage")
    (day / "edi" / RUN_DATE / "noise.edi").write_text("hello, I am not EDI\n")
    (day / "events" / RUN_DATE / "more.jsonl").write_text('{"event_id": 1\n[1, 2]\n\n')
    (day / "commerce" / RUN_DATE / "empty.jsonl").write_text("")
    out = tmp_path / "out"
    assert run_batch(world_copy / "config.yaml", output=out) == 0
    con = warehouse(out)
    status, counts = con.execute("SELECT status, counts FROM runs").fetchall()[0]
    assert status == "succeeded"
    assert all(c["read"] == c["written"] + c["quarantined"] for c in counts)
    by_file = dict(con.execute("SELECT regexp_extract(file, '[^/]+$'), list(DISTINCT reason_code ORDER BY reason_code) FROM quarantine GROUP BY 1").fetchall())
    assert by_file["store_9999.parquet"] == ["unreadable_file"]
    assert by_file["more.jsonl"] == ["malformed_event"]
    assert "noise.edi" in by_file
    assert "extra.csv" in by_file
    # The good files still reconcile: the golden classes are all there.
    classes = {r[0] for r in con.execute("SELECT DISTINCT class FROM discrepancies").fetchall()}
    assert {"missing_in_other", "in_transit", "oversell_risk", "timing"} <= classes


def test_missing_mapped_column_quarantines_the_file_naming_it_and_fails_the_gate(world_copy, tmp_path, capsys):
    """The record system delivering no valid record is a critical gate failure (exit 3), not a
    night of `missing_in_record` discrepancies (issue 12 §2)."""
    erp = world_copy / "inputs" / "erp" / RUN_DATE / "erp_stock.csv"
    text = erp.read_text().replace("LABST", "LABST_RENAMED", 1)
    erp.write_text(text)
    out = tmp_path / "out"
    assert run_batch(world_copy / "config.yaml", output=out, extra=["--allow-missing", "all"]) == 3
    assert "erp_nightly (source): expect_source_to_deliver_valid_records" in capsys.readouterr().err
    con = duckdb.connect(str(out / "warehouse.duckdb"), read_only=True)
    codes = con.execute("SELECT DISTINCT reason_code, any_value(reason) FROM quarantine WHERE source = 'erp_nightly' GROUP BY 1").fetchall()
    reasons = dict(codes)
    assert "missing_column" in reasons and "LABST" in reasons["missing_column"] and "erp_stock.csv" in reasons["missing_column"]


@pytest.mark.parametrize("argv, code", [([], 2), (["--help"], 0), (["nonsense"], 2)])
def test_dispatcher_usage(argv, code, capsys):
    from invrecon.pipelines.cli import main

    assert main(argv) == code


def test_sql_command_reads_the_warehouse_and_neutralizes_csv(committed_run, capsys):
    from invrecon.pipelines.cli import main

    db = str(committed_run / "warehouse.duckdb")
    assert main(["sql", "--warehouse", db, "--csv", "SELECT class, count(*) AS n FROM discrepancies GROUP BY 1 ORDER BY 1"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "class,n" and "timing,15" in out
    assert main(["sql", "--warehouse", db, "--csv", "SELECT '=1+2' AS t"]) == 0
    assert capsys.readouterr().out.splitlines()[1] == "'=1+2"
    assert main(["sql", "--warehouse", db, "DROP TABLE runs"]) == 2  # read-only
    assert main(["sql", "--warehouse", str(committed_run / "nope.duckdb"), "SELECT 1"]) == 2


def test_bad_alert_threshold_is_exit_2_before_any_work(world_copy, tmp_path, capsys):
    cfg = world_copy / "config.yaml"
    cfg.write_text(cfg.read_text().replace("oversell_units_per_sku: 5", "oversell_units_per_sku: lots"))
    out = tmp_path / "out"
    assert run_batch(cfg, output=out) == 2
    assert "alerts.oversell_units_per_sku" in capsys.readouterr().err
    assert not out.exists()
