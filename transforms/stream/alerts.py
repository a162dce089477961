"""Raise the stream's ALERTS rows: a reported count that diverges from the running position, an availability above ATP.

Pure functions of a batch's position updates (or availability figures met on arrival) and the item
master; `RunningPosition` calls them for every batch it applies.

Worked example (store S0001, tolerance max(1, 2%), running position 38): the store counts 30, a
difference of -8 beyond the tolerance of 1, so `store_divergence` is raised, critical since 8 > 2 x 1.
A commerce node publishing 9 available where on_hand 10 - reserved 3 - safety stock 2 leaves an
ATP of 5 raises `availability_above_atp` (oversell risk 4).
"""

from __future__ import annotations

import datetime as dt
import zoneinfo

import polars as pl

from invrecon.transforms.reconcile.classify import tolerance_exprs
from invrecon.transforms.stream.params import MICROS, TS, StreamParams

__all__ = ["availability_alerts", "count_alerts"]


def _with_tolerance(rows: pl.DataFrame, record: pl.Expr, *, params: StreamParams, items: pl.DataFrame, location_types: pl.DataFrame) -> pl.DataFrame:
    """`rows` with `_tol`: the first matching tolerance rule of the record figure, floored at `min_alert_abs`."""
    abs_e, pct_e = tolerance_exprs(params.tolerances)
    return (
        rows.with_columns(pl.col("system").alias("other_system"))
        .join(items, on="sku", how="left", maintain_order="left")
        .join(location_types, on="location", how="left", maintain_order="left")
        .with_columns(pl.max_horizontal(pl.lit(float(params.min_alert_abs)), pl.max_horizontal(abs_e, pct_e * record.abs())).alias("_tol"))
    )


def _alert(params: StreamParams, *, ts: int, rule: str, subject: str, threshold: float, observed: float, severity: str, message: str) -> dict:
    """One ALERTS row (+ `_date`, its partition: the local date of `ts`)."""
    local = dt.datetime.fromtimestamp(ts / MICROS, zoneinfo.ZoneInfo(params.timezone)).date()
    return {"snapshot_date": local, "rule": rule, "subject": subject, "threshold": threshold, "observed": observed,
            "severity": severity, "message": message, "run_id": params.run_id, "_date": local.isoformat()}


def count_alerts(updates: pl.DataFrame, *, params: StreamParams, items: pl.DataFrame, location_types: pl.DataFrame) -> list[dict]:
    """`<system>_divergence` alerts: counts of an alert system beyond tolerance of the running position before them.

    Args:
      updates: `apply_movements` updates (with `prev_on_hand`, `had_base`, `qty`, `file`, `locator`).
      params: the stream's settings (alert systems, tolerances, floor, timezone, run id).
      items: sku, abc_class, category, `_safety` of the item master.
      location_types: location, location_type of the location crosswalk.
    """
    counts = updates.filter((pl.col("event_type") == "count") & pl.col("system").is_in(list(params.alert_systems)) & pl.col("had_base"))
    if not counts.height:
        return []
    counts = _with_tolerance(counts, pl.col("prev_on_hand"), params=params, items=items, location_types=location_types)
    counts = counts.filter((pl.col("qty") - pl.col("prev_on_hand")).abs() > pl.col("_tol"))
    out = []
    for r in counts.iter_rows(named=True):
        running, tol = r["prev_on_hand"], float(r["_tol"])
        diff = r["qty"] - running
        out.append(_alert(
            params, ts=r["occurred_at"], rule=f"{r['system']}_divergence", subject=f"{r['sku']}@{r['location']}", threshold=tol, observed=float(diff),
            severity="critical" if tol == 0 or abs(diff) > 2 * tol else "warning",
            message=(f"{r['system']} counted {r['qty']} of {r['sku']} at {r['location']} ({r['event_id']}, "
                     f"{r['file']}: {r['locator']}); running position {running}, tolerance {tol:g}"),
        ))
    return out


def availability_alerts(figs: pl.DataFrame, *, params: StreamParams, items: pl.DataFrame) -> list[dict]:
    """`availability_above_atp` alerts: a published available-to-sell above the running ATP it met on arrival.

    Args:
      figs: `figures_at_arrival` rows (`qty` published, `on_hand_at`, `reserved_at`, `had_base`).
      params: the stream's settings (alert systems, timezone, run id).
      items: sku and `_safety` (safety stock) of the item master.
    """
    figs = (
        figs.filter(pl.col("had_base") & pl.col("system").is_in(list(params.alert_systems)))
        .join(items.select("sku", "_safety"), on="sku", how="left", maintain_order="left")
        .with_columns(pl.max_horizontal(pl.lit(0), pl.col("on_hand_at") - pl.col("reserved_at") - pl.col("_safety").fill_null(0)).alias("_atp"))
        .filter(pl.col("qty") > pl.col("_atp"))
    )
    out = []
    for r in figs.iter_rows(named=True):
        atp, published = r["_atp"], r["qty"]
        out.append(_alert(
            params, ts=r[TS], rule="availability_above_atp", subject=f"{r['sku']}@{r['location']}/{r['system']}", threshold=float(atp),
            observed=float(published), severity="critical",
            message=(f"{r['system']} publishes {published} of {r['sku']} at {r['location']} available "
                     f"({r['file']}: {r['locator']}); running ATP {atp}: oversell risk {published - atp}"),
        ))
    return out
