"""What value at stake, "unexplained", "explained" and "age" mean, as SQL over discrepancy rows.

One home for the SQL the warehouse views (`pipelines.warehouse_views`), the report
(`pipelines.report.data`), the run's figures and aging (`pipelines.settle`) and the alerts
(`pipelines.alerts`) share, so none of them can drift from the others. The class groups
themselves are `schemas.UNEXPLAINED`, `EXPLAINED` and `NOT_AGED`.
"""

from __future__ import annotations

from invrecon.schemas import EXPLAINED, NOT_AGED, UNEXPLAINED

__all__ = ["AGE_KEY", "AT_STAKE", "EXPLAINED_IN", "NOT_AGED_IN", "UNEXPLAINED_IN", "VALUE_SUMS", "aging_sql"]


def _quoted(classes: tuple[str, ...]) -> str:
    return ", ".join(f"'{c}'" for c in classes)


# The class groups as SQL lists, for `class IN (...)`.
UNEXPLAINED_IN = _quoted(UNEXPLAINED)
EXPLAINED_IN = _quoted(EXPLAINED)
NOT_AGED_IN = _quoted(NOT_AGED)

# Value at stake: every discrepancy but oversell_risk, which is a channel's exposure, not a book
# difference. The `value_variance` view, the report and the run's figures filter with AT_STAKE
# and add up with VALUE_SUMS (name -> aggregate over discrepancy rows), so gross, net,
# unexplained and explained mean one thing in all of them.
AT_STAKE = "class <> 'oversell_risk'"
VALUE_SUMS = {
    "gross_value": "coalesce(sum(abs(value_delta)), 0)",  # Σ|value|: a surplus never nets a shortage
    "net_value": "coalesce(sum(value_delta), 0)",
    "unexplained_gross_value": f"coalesce(sum(abs(value_delta)) FILTER (WHERE class IN ({UNEXPLAINED_IN})), 0)",
    "unexplained_net_value": f"coalesce(sum(value_delta) FILTER (WHERE class IN ({UNEXPLAINED_IN})), 0)",
    "explained_gross_value": f"coalesce(sum(abs(value_delta)) FILTER (WHERE class IN ({EXPLAINED_IN})), 0)",
}


AGE_KEY = ("sku", "location", "other_system", "class")


def aging_sql(open_rows: str, run_dates: str) -> str:
    """SQL giving first_seen / age_days of every row of `open_rows` (DESIGN.md §6.7).

    The rule: the run dates are the dates in `run_dates` (succeeded runs). A (sku, location,
    other_system, class) is aged over the *consecutive run dates* on which it was open: its streak
    breaks on a run date where it was not open, never on a calendar day without a run (no run is
    no evidence that it closed). first_seen = the first run date of the streak; age_days =
    calendar days from first_seen to the row's date.

    Worked example, run dates 11-25, 11-26, 11-28, 11-29 (no run on 11-27), one key open on
    11-25, 11-26, 11-28 and 11-29: first_seen 11-25 on every date, age_days 0, 1, 3, 4. Backfill
    11-27 without that key: the streak breaks there, so 11-28 becomes first_seen 11-28, age 0 and
    11-29 age 1.

    Args:
      open_rows: a relation with snapshot_date and the AGE_KEY columns.
      run_dates: a relation with a `run_date` column.
    """
    key = ", ".join(AGE_KEY)
    return f"""
        WITH dates AS (
            SELECT run_date, row_number() OVER (ORDER BY run_date) AS r
            FROM (SELECT DISTINCT run_date FROM {run_dates})),
        k AS (
            SELECT DISTINCT o.snapshot_date, {", ".join("o." + c for c in AGE_KEY)}, d.r
            FROM {open_rows} o JOIN dates d ON d.run_date = o.snapshot_date),
        isl AS (
            SELECT *, r - row_number() OVER (PARTITION BY {key} ORDER BY r) AS island FROM k),
        f AS (
            SELECT snapshot_date, {key}, min(snapshot_date) OVER (PARTITION BY {key}, island) AS first_seen FROM isl)
        SELECT snapshot_date, {key}, first_seen,
               CAST(date_diff('day', first_seen, snapshot_date) AS INTEGER) AS age_days
        FROM f"""
