"""The HTML report: one self-contained page (inline CSS and SVG, no script, nothing fetched at
view time), rendered by Jinja2 with autoescape from `pipelines/templates/report.html.j2`."""

from __future__ import annotations

import datetime as dt
import pathlib
from typing import Any

import jinja2

from invrecon.pipelines.report.charts import TREND_PARTS, charts
from invrecon.pipelines.report.common import CLASS_COLORS, SIGN_CONVENTION, glossary_rows
from invrecon.pipelines.report.data import ReportData
from invrecon.schemas import UNEXPLAINED

__all__ = ["render_html"]

TEMPLATES = pathlib.Path(__file__).resolve().parent.parent / "templates"


def _money(value: Any, currency: str | None = None) -> str:
    if value is None:
        return ""
    text = f"{float(value):,.2f}"
    return f"{currency} {text}" if currency else text


def _int(value: Any) -> str:
    return "" if value is None else f"{int(value):,}"


def _num(value: Any) -> str:
    if value is None:
        return "none"
    return f"{int(value):,}" if float(value).is_integer() else f"{float(value):,.2f}"


def _pct(value: Any, digits: int = 1) -> str:
    return "" if value is None else f"{float(value):.{digits}%}"


def _lineage(value: str | None) -> dict:
    """Split "file:locator" lineage into the file's name, its path and the locator."""
    if not value:
        return {"name": "", "path": "", "locator": ""}
    path, _, locator = value.rpartition(":") if ":" in value else (value, "", "")
    if not path:
        path, locator = value, ""
    return {"name": path.rsplit("/", 1)[-1], "path": path, "locator": locator}


def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=jinja2.select_autoescape(["html", "j2", "html.j2"], default_for_string=True, default=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(money=_money, int=_int, num=_num, pct=_pct, lineage=_lineage)
    return env


def render_html(data: ReportData, *, generated: dt.datetime | None = None) -> str:
    """Render the self-contained HTML report."""
    generated = generated or dt.datetime.now(dt.UTC)
    return _env().get_template("report.html.j2").render(
        d=data, charts=charts(data), colors={**CLASS_COLORS, **TREND_PARTS}, generated=generated.strftime("%Y-%m-%d %H:%M UTC"),
        unexplained=UNEXPLAINED, glossary=glossary_rows(), sign_convention=SIGN_CONVENTION,
    )
