"""Reconcile every (sku, location) at the cut-off (DESIGN.md §6): the package's public names.

    roll        roll positions to the cut-off, open in-transit lines (pure polars)
    classify    tolerance rules and the discrepancy class of a compared pair (pure polars)
    bucket      `reconcile_bucket`: one hash bucket of keys -> snapshot and discrepancy rows
    composites  the Beam composites `OpenInTransit` and `ReconcileBySkuLocation`
"""

from invrecon.transforms.reconcile.bucket import ReconcileParams, reconcile_bucket
from invrecon.transforms.reconcile.classify import Tolerance, discrepancy_class, tolerance_exprs
from invrecon.transforms.reconcile.composites import OpenInTransit, ReconcileBySkuLocation
from invrecon.transforms.reconcile.roll import latest_positions, open_in_transit, roll_to_cutoff

__all__ = [
    "OpenInTransit",
    "ReconcileBySkuLocation",
    "ReconcileParams",
    "Tolerance",
    "discrepancy_class",
    "latest_positions",
    "open_in_transit",
    "reconcile_bucket",
    "roll_to_cutoff",
    "tolerance_exprs",
]
