"""The batch reads real partners' EDI through the same parser: 40 hostile files, no crash."""

from __future__ import annotations

import pytest
import yaml

from tests.conftest import EDI_SAMPLES, run_batch, warehouse

pytestmark = pytest.mark.skipif(not EDI_SAMPLES.is_dir(), reason="../shared/edi-samples is not beside the repo")


def test_every_partner_sample_through_the_batch_conserves_and_never_stops_the_run(world_copy, tmp_path):
    cfg_path = world_copy / "config.yaml"
    cfg = yaml.safe_load(cfg_path.read_text())
    for s in cfg["sources"]:
        if s["name"] == "tpl_edi":
            s["path"] = str(EDI_SAMPLES) + "/*/*.edi"
    # Partners' ids are not in the world's crosswalk, so nothing of theirs is valid: that only warns.
    cfg["quality"] = {"source_volume_severity": "warning"}
    cfg_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    out = tmp_path / "out"
    assert run_batch(cfg_path, output=out) == 0
    con = warehouse(out)
    counts = {c["source"]: c for c in con.execute("SELECT counts FROM runs").fetchall()[0][0]}
    edi = counts["tpl_edi"]
    assert edi["read"] == edi["written"] + edi["quarantined"] and edi["read"] > 40
    files = {r[0] for r in con.execute("SELECT DISTINCT regexp_extract(file, '[^/]+$') FROM quarantine WHERE source = 'tpl_edi'").fetchall()}
    assert "ediengine-not-edi-at-all.edi" in files and "gozer-header-not-isa.edi" in files
    codes = {r[0] for r in con.execute("SELECT DISTINCT reason_code FROM quarantine WHERE source = 'tpl_edi'").fetchall()}
    assert "unmapped_sku" in codes  # partners' items are not in the world's crosswalk: quarantined, not guessed
    assert not codes & {"reader_error"}  # the parser itself never failed on a file
    acks = list((out / "acks").rglob("*.997"))
    assert len(acks) >= 20 and all(a.read_text().startswith("ISA") for a in acks)
