"""`invrecon parse-edi`: JSON Lines out, exit 0 whatever the data, 2 for unreadable paths."""

from __future__ import annotations

import json

from invrecon.pipelines.parse_edi import main
from tests.transforms.edi.helpers import FIXTURES


def test_prints_json_lines_and_exits_0(capsys):
    assert main([str(FIXTURES / "940-reservations.edi"), str(FIXTURES / "846-sdq-uit-timezone.edi")]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [r["kind"] for r in lines] == ["movement"] * 2 + ["position"] * 4 + ["error"]
    assert lines[-1]["code"] == "bad_quantity"


def test_garbage_is_an_error_line_not_a_failure(tmp_path, capsys):
    junk = tmp_path / "junk.edi"
    junk.write_bytes(b"\x00\xffnot edi at all")
    assert main([str(junk)]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    assert json.loads(line)["code"] == "not_edi"


def test_missing_path_exits_2_naming_it_and_still_prints_the_rest(tmp_path, capsys):
    missing = tmp_path / "nope.edi"
    assert main([str(missing), str(FIXTURES / "945-shipments.edi")]) == 2
    captured = capsys.readouterr()
    assert str(missing) in captured.err and "Traceback" not in captured.err
    assert len(captured.out.splitlines()) == 1


def test_directory_is_expanded_and_acks_written(tmp_path, capsys):
    d = tmp_path / "in"
    d.mkdir()
    (d / "a.edi").write_bytes((FIXTURES / "944-receipts.edi").read_bytes())
    acks = tmp_path / "acks"
    assert main([str(d), "--ack-dir", str(acks)]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2
    (ack,) = sorted(acks.iterdir())
    assert ack.name == "a.1.997" and "AK1*RE*105*004010~" in ack.read_text()


def test_config_qualifier_overrides(tmp_path, capsys):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("sources:\n  - {name: e, kind: edi, path: x, qualifiers: {UC: marketplace_sku}}\n")
    assert main([str(FIXTURES / "940-reservations.edi"), "--config", str(cfg)]) == 0
    first = json.loads(capsys.readouterr().out.splitlines()[0])
    assert first["item_id_qualifier"] == "VN"


def test_bad_config_and_usage_exit_2(tmp_path, capsys):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("sources: {not: a list}\n")
    assert main([str(FIXTURES / "940-reservations.edi"), "--config", str(cfg)]) == 2
    assert main([]) == 2
    err = capsys.readouterr().err
    assert "`sources` must be a list" in err and "Traceback" not in err
