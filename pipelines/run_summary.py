"""What a batch run came to (`RunResult`) and the few lines printed after it (`summary_text`)."""

from __future__ import annotations

import dataclasses
import datetime as dt

from invrecon.pipelines import alerts

__all__ = ["RunResult", "summary_text"]


@dataclasses.dataclass
class RunResult:
    run_id: str
    run_date: dt.date
    status: str
    output: str
    warehouse: str
    counts: list[dict]
    classes: dict[str, int]
    value_at_stake: float
    net_value: float
    quarantined: int
    alerts: int
    message: str = ""
    data_docs: str | None = None  # the Data Docs index (pipelines.data_docs), None when not built
    warnings: tuple[str, ...] = ()  # data-quality checks that failed as warnings (quality_gate.warnings_of)


def summary_text(r: RunResult) -> str:
    """The few lines a person reads after `make run`."""
    lines = [f"invrecon batch {r.run_date}  run {r.run_id}  {r.status.upper()}"]
    lines.append("")
    lines.append("discrepancies by class:")
    total = 0
    for klass, n in sorted(r.classes.items()):
        lines.append(f"  {klass:<18} {n:>8}")
        total += n
    lines.append(f"  {'total':<18} {total:>8}")
    lines.append(f"value at stake (gross |value_delta|): {r.value_at_stake:,.2f}   net: {r.net_value:,.2f}")
    lines.append(f"alerts fired: {r.alerts}" + (f"  (see {alerts.report_dir(r.output, r.run_date)}/alerts.jsonl)" if r.alerts else ""))
    lines.append("")
    lines.append("records per source (read = written + quarantined):")
    for c in r.counts:
        mark = "VIOLATED" if not c["conserved"] else "file unreadable" if c.get("unreadable") else "ok"
        lines.append(f"  {c['source']:<24} {c['read']:>8} = {c['written']:>8} + {c['quarantined']:>6}  {mark}")
    if r.message:
        lines.append(f"  {r.message}")
    if r.warnings:
        lines.append("")
        lines.append("data-quality warnings (the run went on; see dq_results and the Data Docs):")
        lines += [f"  {w}" for w in r.warnings]
    lines.append("")
    lines.append(f"outputs:   {r.output}/<table>/  (Parquet, partitioned by date)")
    lines.append(f"warehouse: {r.warehouse}")
    if r.data_docs:
        lines.append(f"data docs: {r.data_docs.removeprefix('file://')}  (data-quality results of this run and the last ones; opens offline)")
    lines.append("try:")
    lines.append(
        f"  .venv/bin/invrecon sql --warehouse {r.warehouse} \"SELECT class, location, sku, record_qty, other_qty, delta, value_delta "
        f"FROM discrepancies WHERE snapshot_date = DATE '{r.run_date}' ORDER BY abs(value_delta) DESC LIMIT 20\""
    )
    lines.append(f"  .venv/bin/invrecon sql --warehouse {r.warehouse} \"SELECT * FROM discrepancy_summary\"")
    return "\n".join(lines)
