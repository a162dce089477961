"""A tiny crosswalk for the reader tests: two SKUs (one with a 12-each case GTIN) and a few locations of two systems."""

from __future__ import annotations

import pathlib

SKU_CSV = """id_type,id_value,sku,units_per_id
erp_material,M1,SKU1,1
erp_material,M2,SKU2,1
gtin,036000291452,SKU1,1
gtin,10036000291459,SKU1,12
vendor_part,V-100,SKU1,1
sku,SKU-2,SKU2,1
"""
LOCATION_CSV = """system,source_location,location,location_type
erp,P1,DC01,dc
erp,P2,S0001,store
wms,E1,DC01,dc
wms,NDC,DC01,dc
wms,S001,S0001,store
wms,VP1,V01,vendor
wms,S009,S0009,store
"""


def write_crosswalks(folder: pathlib.Path) -> tuple[str, str]:
    """Write the tiny sku and location crosswalks into `folder`; return their paths."""
    (folder / "sku.csv").write_text(SKU_CSV)
    (folder / "location.csv").write_text(LOCATION_CSV)
    return str(folder / "sku.csv"), str(folder / "location.csv")
