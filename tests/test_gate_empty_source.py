"""A source with no valid rows, with an earlier run in the warehouse (issue 12, §2).

It used to crash: `Validator.validate` built its row mask as `pl.Series("keep", [True] *
df.height)`, which for 0 rows has dtype Null, and filtering by it raised "TypeError: invalid
predicate for `filter`". The mask is Boolean now, and a source with no valid rows after an
earlier run fails the gate (exit 3) naming the source.
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from invrecon.schemas import POSITION
from invrecon.transforms.quality import EXPECTATIONS_DIR, Validator, load_suite, suite_parameters
from tests.conftest import fail_the_erp_after_a_good_day, header_only, make_world

CUTOFF = dt.datetime(2026, 12, 1, 5, 59, 59, 999000, tzinfo=dt.UTC)


def test_an_empty_batch_gets_a_boolean_mask_and_fails_the_gate(tmp_path):
    empty = pl.from_arrow(POSITION.empty_table())
    suite = load_suite(EXPECTATIONS_DIR / "position.json")
    params = suite_parameters(cutoff=CUTOFF, previous_rows=186, band=0.5, max_lag_hours=36)
    out = Validator(str(tmp_path / "gx"), run_name="t").validate(
        empty, source="erp_nightly", record="positions", suites=[suite], params=params, run_id="r", run_date=dt.date(2026, 11, 30)
    )
    assert empty.filter(out.keep).height == 0
    assert out.keep.dtype == pl.Boolean and out.gate_failed


def test_a_header_only_record_extract_after_an_earlier_run_fails_the_gate_not_the_process(tmp_path, capsys):
    fail_the_erp_after_a_good_day(tmp_path)
    assert "erp_nightly" in capsys.readouterr().err


def test_a_source_check_lowered_to_a_warning_is_printed_not_silent(tmp_path, capsys):
    """`quality.source_volume_severity: warning` lets the run go on; the summary says what fired."""
    import yaml

    world = make_world(tmp_path / "w", skus=16, locations=4, days=1, seed=5)
    cfg = yaml.safe_load((world / "config.yaml").read_text())
    cfg["quality"] = {**(cfg.get("quality") or {}), "source_volume_severity": "warning"}
    (world / "config.yaml").write_text(yaml.safe_dump(cfg))
    erp = next((world / "inputs" / "erp").glob("*/erp_stock.csv"))
    header_only(erp)
    from invrecon.pipelines import batch_run

    argv = ["--config", str(world / "config.yaml"), "--run-date", erp.parent.name, "--output", str(tmp_path / "out"), "--buckets", "4"]
    assert batch_run.main(argv) == 0  # not --quiet: the summary is what is checked
    out = capsys.readouterr().out
    assert "data-quality warnings" in out
    assert "erp_nightly (source): expect_source_to_deliver_valid_records (0 valid of 0 read" in out
    assert "files: erp_stock.csv" in out
