"""The batch reads EDI through the parser `invrecon parse-edi` prints: real partners' files (40
hostile ones, no crash) and a 947 whose items are U.P.C. case codes, named alike by both."""

from __future__ import annotations

import csv
import json
import re

import pytest
import yaml

from invrecon.pipelines import parse_edi
from invrecon.transforms.canonical import gtin14_or_none
from invrecon.transforms.edi.values import DEFAULT_QUALIFIERS
from tests.conftest import EDI_SAMPLES, RUN_DATE, make_world, run_batch, warehouse

needs_samples = pytest.mark.skipif(not EDI_SAMPLES.is_dir(), reason="../shared/edi-samples is not beside the repo")


@needs_samples
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


# A 947 whose W19 lines carry only the bare U.P.C. case code element (W1904), which the parser
# names under the implied qualifier UC: a case GTIN-14, an each UPC-12, and a valid GTIN that no
# crosswalk row holds. Written by hand for this test (issue 14).
EDI_947 = """ISA*00*          *00*          *ZZ*TPLWMS         *ZZ*RETAILER       *261130*2100*U*00401*000000947*0*P*>~
GS*AW*TPLWMS*RETAILER*20261130*2100*947*X*004010~
ST*947*0001~
W15*20261130*ADJ-UC-1~
N1*WH*Warehouse 1*92*{warehouse}~
W19*AA*-2*CA*{case}~
W19*56*3*EA*{each}~
W19*AV*1*EA*{unknown}~
SE*7*0001~
GE*1*947~
IEA*1*000000947~
"""


def _valid_gtin(prefix13: str) -> str:
    """`prefix13` and the check digit that makes it a valid GTIN-14."""
    return next(c for c in (prefix13 + str(d) for d in range(10)) if gtin14_or_none(c))


def test_parse_edi_and_batch_agree_on_uc_case_codes(tmp_path, capsys):
    """The items `invrecon parse-edi` names in a 947 are the ones `invrecon batch` maps: a UC id
    the crosswalk holds as a GTIN is never `unmapped_sku` (one qualifier table for both)."""
    world = make_world(tmp_path / "world", skus=12, locations=2, seed=5, faults=False)
    with open(world / "crosswalk" / "sku.csv", newline="") as f:
        gtins = {gtin14_or_none(r["id_value"]): (r["sku"], int(r["units_per_id"])) for r in csv.DictReader(f) if r["id_type"] == "gtin"}
    with open(world / "crosswalk" / "location.csv", newline="") as f:
        warehouse_code = next(r["source_location"] for r in csv.DictReader(f) if r["system"] == "wms" and r["location_type"] == "dc")
    case = next(g for g, (_, units) in gtins.items() if units > 1)
    each = next(g[2:] for g, (sku, units) in gtins.items() if units == 1 and sku != gtins[case][0] and g.startswith("00"))  # as a UPC-12
    unknown = _valid_gtin("1009999999999")
    assert unknown not in gtins
    path = world / "inputs" / "edi" / RUN_DATE / "947_adjustments.edi"
    path.write_text(EDI_947.format(warehouse=warehouse_code, case=case, each=each, unknown=unknown))

    assert parse_edi.main([str(path)]) == 0
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    named = {r["segment"]: r for r in printed if r["kind"] == "movement"}
    assert not [r for r in printed if r["kind"] == "error"]
    assert [(r["item_id_qualifier"], r["item_id"]) for r in named.values()] == [("UC", case), ("UC", each), ("UC", unknown)]
    assert {DEFAULT_QUALIFIERS[r["item_id_qualifier"]] for r in named.values()} == {"gtin"}

    out = tmp_path / "out"
    assert run_batch(world / "config.yaml", output=out) == 0
    con = warehouse(out)
    mapped = {int(re.match(r"segment (\d+)", loc)[1]): (sku, qty) for sku, qty, loc in con.execute(
        "SELECT sku, qty, locator FROM movements WHERE file LIKE '%/947_adjustments.edi'").fetchall()}
    unmapped = {int(re.match(r"segment (\d+)", loc)[1]) for (loc,) in con.execute(
        "SELECT locator FROM quarantine WHERE source = 'tpl_edi' AND reason_code = 'unmapped_sku' AND file LIKE '%/947_adjustments.edi'").fetchall()}
    for segment, r in named.items():
        known = gtins.get(gtin14_or_none(r["item_id"]))
        if known is None:
            assert segment in unmapped and segment not in mapped, r
        else:
            sku, units = known
            assert segment not in unmapped, r
            assert mapped[segment] == (sku, r["qty"] * units), r  # the case line: cases x pack, in eaches
    assert len(mapped) == 2 and len(unmapped) == 1
