"""A self-contained HTML report for a commander: one zone (or region, or everything) over a period.

Sections: the headline figures (P50/P90 of each interval, share of responses within the
configured target), the heatmap of P90 total response per H3 res-8 cell on the base map, P50/P90
per zone against the target, the worst cells, and the trend by month (table and chart). Every
figure is computed in SQL with ``percentile_cont`` over ``response_intervals`` for exactly the
filtered incidents; the page inlines its scripts, styles and chart (only the base map tiles are
fetched when it is viewed, and only when ``settings.tile_url`` is set).
"""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import folium
import numpy as np
from h3.api import basic_int as h3i
from matplotlib.figure import Figure
from sqlalchemy import text
from sqlalchemy.orm import Session

from geodispatch.analytics.aggregates import CellStats
from geodispatch.analytics.basemap import add_base_map
from geodispatch.analytics.heatmap import (
    METRICS,
    OSM_ATTRIBUTION,
    _Attribution,
    _inline_leaflet,
    _legend_html,
    cell_features,
)
from geodispatch.errors import InvalidInput
from geodispatch.geo import LatLng
from geodispatch.settings import Settings, get_settings

REPORT_INTERVALS = (
    ("call_processing_s", "Call processing (received → first dispatch)"),
    ("turnout_s", "Turnout (dispatch → en route)"),
    ("travel_s", "Travel (en route → on scene)"),
    ("total_response_s", "Total response (received → first on scene)"),
)
WORST_CELLS = 10
MIN_CELL_RESPONSES = 5


@dataclass(frozen=True)
class ReportScope:
    """Which incidents a report covers."""

    start: datetime | None
    end: datetime | None
    region: str | None = None
    zone: str | None = None
    zone_name: str | None = None
    sector_ids: tuple[int, ...] = ()
    category: str | None = None
    priority: int | None = None

    def where(self) -> tuple[str, dict[str, Any]]:
        clauses, params = ["TRUE"], dict[str, Any]()
        if self.start is not None:
            clauses.append("r.received_at >= :start")
            params["start"] = self.start
        if self.end is not None:
            clauses.append("r.received_at < :end")
            params["end"] = self.end
        if self.region is not None:
            clauses.append("r.region = :region")
            params["region"] = self.region
        if self.zone is not None:
            clauses.append("r.sector_id = ANY(:sectors)")
            params["sectors"] = list(self.sector_ids)
        if self.category is not None:
            clauses.append("r.category = :category")
            params["category"] = self.category
        if self.priority is not None:
            clauses.append("r.priority = :priority")
            params["priority"] = self.priority
        return " AND ".join(clauses), params

    def filters_text(self) -> str:
        """``category fire, priority 1`` (empty without filters)."""
        parts = ([f"category {self.category}"] if self.category is not None else []) + (
            [f"priority {self.priority}"] if self.priority is not None else [])
        return ", ".join(parts)


def resolve_scope(*, session: Session, start: datetime | None, end: datetime | None,
                  region: str | None = None, zone: str | None = None,
                  category: str | None = None, priority: int | None = None) -> ReportScope:
    """The scope of a report; a zone code covers that zone and the zones directly below it;
    ``category`` and ``priority`` narrow every figure of the report to those incidents."""
    if start is not None and end is not None and end <= start:
        raise InvalidInput("--to must be after --from")
    if priority is not None and priority not in (1, 2, 3, 4):
        raise InvalidInput(f"priority must be 1-4, not {priority}")
    if zone is None:
        return ReportScope(start=start, end=end, region=region, category=category,
                           priority=priority)
    rows = session.execute(text(
        "SELECT z.id, z.name FROM zones z WHERE z.code = :code AND z.valid_to IS NULL "
        "AND (CAST(:region AS text) IS NULL OR z.region = :region)"),
        {"code": zone, "region": region}).all()
    if not rows:
        raise InvalidInput(f"no current zone with code {zone!r}"
                           + (f" in region {region}" if region else ""))
    ids = [int(r[0]) for r in rows]
    children = session.execute(text(
        "SELECT id FROM zones WHERE parent_id = ANY(:ids) AND valid_to IS NULL"),
        {"ids": ids}).scalars().all()
    return ReportScope(start=start, end=end, region=region, zone=zone, zone_name=str(rows[0][1]),
                       sector_ids=tuple(sorted({*ids, *(int(c) for c in children)})),
                       category=category, priority=priority)


def _mmss(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    s = int(round(seconds))
    return f"{s // 60}:{s % 60:02d}"


def _pct(share: float | None) -> str:
    return "–" if share is None else f"{100 * share:.1f} %"


def headline(session: Session, scope: ReportScope, target_s: float) -> dict[str, Any]:
    """Count, and P50/P90/n of each report interval; share of total responses within target."""
    where, params = scope.where()
    parts = ["count(*)"]
    for col, _ in REPORT_INTERVALS:
        parts += [f"count({col})", f"percentile_cont(0.5) WITHIN GROUP (ORDER BY {col})",
                  f"percentile_cont(0.9) WITHIN GROUP (ORDER BY {col})"]
    parts.append("avg((total_response_s <= :target)::int)::float8")
    row = session.execute(text(f"SELECT {', '.join(parts)} FROM response_intervals r "
                               f"WHERE {where}"), {**params, "target": target_s}).one()
    out: dict[str, Any] = {"count": int(row[0]), "within_target": row[-1]}
    for i, (col, _) in enumerate(REPORT_INTERVALS):
        n, p50, p90 = row[1 + 3 * i: 4 + 3 * i]
        out[col] = {"n": int(n), "p50": p50, "p90": p90}
    return out


def by_zone(session: Session, scope: ReportScope, target_s: float) -> list[dict[str, Any]]:
    """P50/P90 of each interval per sector (zone), worst P90 total response first."""
    where, params = scope.where()
    parts = []
    for col, _ in REPORT_INTERVALS:
        parts += [f"percentile_cont(0.5) WITHIN GROUP (ORDER BY {col})",
                  f"percentile_cont(0.9) WITHIN GROUP (ORDER BY {col})"]
    sql = (f"SELECT r.sector_id, z.code, z.name, count(*), {', '.join(parts)}, "
           "avg((r.total_response_s <= :target)::int)::float8 FROM response_intervals r "
           f"LEFT JOIN zones z ON z.id = r.sector_id WHERE {where} "
           "GROUP BY r.sector_id, z.code, z.name")
    rows = []
    for row in session.execute(text(sql), {**params, "target": target_s}):
        rec: dict[str, Any] = {"code": row[1] or "—", "name": row[2] or "no zone",
                               "count": int(row[3]), "within_target": row[-1]}
        for i, (col, _) in enumerate(REPORT_INTERVALS):
            rec[col] = (row[4 + 2 * i], row[5 + 2 * i])
        rows.append(rec)
    rows.sort(key=lambda r: -(r["total_response_s"][1] or -1.0))
    return rows


def cells(session: Session, scope: ReportScope, target_s: float, res: int = 8) -> CellStats:
    """Per-cell total response figures of the scope (exact, ``percentile_cont``)."""
    where, params = scope.where()
    sql = (f"SELECT h3_{res}, count(*), count(total_response_s), "
           "percentile_cont(0.5) WITHIN GROUP (ORDER BY total_response_s), "
           "percentile_cont(0.9) WITHIN GROUP (ORDER BY total_response_s), "
           "avg((total_response_s <= :target)::int)::float8 "
           f"FROM response_intervals r WHERE {where} GROUP BY h3_{res} ORDER BY h3_{res}")
    rows = session.execute(text(sql), {**params, "target": target_s}).all()

    def col(i: int, dtype: type) -> Any:
        return np.array([np.nan if r[i] is None else r[i] for r in rows], dtype=dtype)

    return CellStats(res=res, cells=col(0, np.int64), count=col(1, np.int64), n=col(2, np.int64),
                     median_s=col(3, np.float64), p90_s=col(4, np.float64),
                     within_target=col(5, np.float64), target_s=target_s)


def by_month(session: Session, scope: ReportScope, target_s: float, tz: str
             ) -> list[dict[str, Any]]:
    """Per calendar month (local time): count, P50/P90 total response, share within target."""
    where, params = scope.where()
    sql = ("SELECT to_char(date_trunc('month', r.received_at AT TIME ZONE :tz), 'YYYY-MM') m, "
           "count(*), percentile_cont(0.5) WITHIN GROUP (ORDER BY total_response_s), "
           "percentile_cont(0.9) WITHIN GROUP (ORDER BY total_response_s), "
           "avg((total_response_s <= :target)::int)::float8 "
           f"FROM response_intervals r WHERE {where} GROUP BY m ORDER BY m")
    return [{"month": m, "count": int(c), "p50": p50, "p90": p90, "within_target": w}
            for m, c, p50, p90, w in session.execute(
                text(sql), {**params, "target": target_s, "tz": tz})]


def _trend_png(months: list[dict[str, Any]], target_s: float) -> str:
    fig = Figure(figsize=(7.5, 2.8), dpi=110)
    ax = fig.subplots()
    x = list(range(len(months)))
    for key, label in (("p50", "P50"), ("p90", "P90")):
        ax.plot(x, [np.nan if m[key] is None else m[key] / 60 for m in months], marker="o",
                label=label)
    ax.axhline(target_s / 60, color="#b00", linestyle="--", linewidth=1, label="target")
    ax.set_xticks(x, [m["month"] for m in months], rotation=45 if len(months) > 8 else 0)
    ax.set_ylabel("minutes")
    ax.set_title("Total response by month")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return base64.b64encode(buf.getvalue()).decode()


def _map_html(stats: CellStats, settings: Settings, subtitle: str) -> str:
    geojson, bins, colours = cell_features(stats, "p90_response")
    m = folium.Map(location=None, tiles=None, control_scale=True)
    _inline_leaflet(m)
    add_base_map(m, settings, settings.tile_attribution or OSM_ATTRIBUTION, name="base map")
    _Attribution(settings.tile_attribution or OSM_ATTRIBUTION).add_to(m)
    folium.GeoJson(geojson, style_function=lambda f: {
        "fillColor": f["properties"]["fill"], "color": "#555", "weight": 0.6,
        "fillOpacity": 0.65}).add_to(m)
    legend = _legend_html(METRICS["p90_response"], bins, colours, subtitle=subtitle,
                          target_s=stats.target_s)
    m.get_root().html.add_child(folium.Element(legend))  # type: ignore[attr-defined]
    if len(stats):
        pts = [p for c in stats.cells.tolist() for p in h3i.cell_to_boundary(c)]
        sw = LatLng(min(p[0] for p in pts), min(p[1] for p in pts))
        ne = LatLng(max(p[0] for p in pts), max(p[1] for p in pts))
        m.fit_bounds([sw.to_leaflet(), ne.to_leaflet()])
    else:
        m.location = LatLng(50.4501, 30.5234).to_leaflet()
        m.options["zoom"] = 11
    return str(m.get_root().render())


_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1100px;color:#222}
h1{font-size:22px;margin-bottom:2px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:8px 0}td,th{padding:3px 9px;border-bottom:1px solid #e4e4e4}
th{text-align:left;background:#f4f4f4}td.n{text-align:right;font-variant-numeric:tabular-nums}
.over{color:#b00;font-weight:600}.meta{color:#666}
iframe{width:100%;height:520px;border:1px solid #ccc}
"""


def build_report(*, session: Session, scope: ReportScope, target_s: float | None = None,
                 settings: Settings | None = None) -> str:
    """The report page (HTML text) of ``scope``; see the module docstring."""
    settings = settings or get_settings()
    target = settings.response_target_s if target_s is None else target_s
    tz = settings.analytics_timezone
    head = headline(session, scope, target)
    zones = by_zone(session, scope, target)
    stats = cells(session, scope, target)
    months = by_month(session, scope, target, tz)
    e = html.escape

    def over(v: float | None) -> str:
        cls = ' class="n over"' if v is not None and v > target else ' class="n"'
        return f"<td{cls}>{_mmss(v)}</td>"

    period = (f"{scope.start:%Y-%m-%d %H:%M %Z}" if scope.start else "the first call") + " – " + (
        f"{scope.end:%Y-%m-%d %H:%M %Z}" if scope.end else "the last call")
    what = (f"zone {scope.zone} ({scope.zone_name})" if scope.zone
            else f"region {scope.region}" if scope.region else "all regions")
    if scope.filters_text():
        what += f"; {scope.filters_text()}"
    out = [f"<!doctype html><html lang=en><head><meta charset=utf-8>"
           f"<title>Response report: {e(what)}</title><style>{_CSS}</style></head><body>",
           f"<h1>Response times: {e(what)}</h1>",
           f"<p class=meta>{e(period)} · {head['count']:,} incidents · target "
           f"{_mmss(target)} · generated {datetime.now().astimezone():%Y-%m-%d %H:%M %Z}</p>"]
    out.append("<h2>Headline</h2><table><tr><th>interval</th><th>with the interval</th>"
               "<th>P50</th><th>P90</th></tr>")
    for col, label in REPORT_INTERVALS:
        h = head[col]
        plain = f"<td class=n>{_mmss(h['p90'])}</td>"
        cell90 = over(h["p90"]) if col == "total_response_s" else plain
        out.append(f"<tr><td>{e(label)}</td><td class=n>{h['n']:,}</td>"
                   f"<td class=n>{_mmss(h['p50'])}</td>{cell90}</tr>")
    out.append(f"</table><p>Within the target of {_mmss(target)}: "
               f"<b>{_pct(head['within_target'])}</b> of the responses.</p>")
    subtitle = f"H3 res 8, {int(stats.count.sum()) if len(stats) else 0} incidents, {period}"
    page = _map_html(stats, settings, subtitle)
    out.append("<h2>P90 total response per cell</h2>"
               f'<iframe title="heatmap" srcdoc="{e(page, quote=True)}"></iframe>')
    out.append("<h2>By zone</h2><table><tr><th>zone</th><th>incidents</th>"
               + "".join(f"<th>{e(lbl.split(' (')[0])} P50 / P90</th>"
                         for _, lbl in REPORT_INTERVALS) + "<th>within target</th></tr>")
    for z in zones:
        cols = "".join(f"<td class=n>{_mmss(z[c][0])} / {_mmss(z[c][1])}</td>"
                       for c, _ in REPORT_INTERVALS)
        out.append(f"<tr><td>{e(str(z['code']))} {e(str(z['name']))}</td>"
                   f"<td class=n>{z['count']:,}</td>{cols}"
                   f"<td class=n>{_pct(z['within_target'])}</td></tr>")
    out.append("</table>")
    worst = [i for i in np.argsort(-np.nan_to_num(stats.p90_s, nan=-1.0)).tolist()
             if stats.n[i] >= MIN_CELL_RESPONSES][:WORST_CELLS]
    out.append(f"<h2>Worst cells (P90, at least {MIN_CELL_RESPONSES} responses)</h2><table><tr>"
               "<th>H3 cell</th><th>centre (lat, lon)</th><th>responses</th><th>P50</th>"
               "<th>P90</th><th>within target</th></tr>")
    for i in worst:
        cell = int(stats.cells[i])
        lat, lng = h3i.cell_to_latlng(cell)
        out.append(f"<tr><td>{h3i.int_to_str(cell)}</td><td>{lat:.5f}, {lng:.5f}</td>"
                   f"<td class=n>{int(stats.n[i]):,}</td>"
                   f"<td class=n>{_mmss(float(stats.median_s[i]))}</td>"
                   f"{over(float(stats.p90_s[i]))}"
                   f"<td class=n>{_pct(float(stats.within_target[i]))}</td></tr>")
    out.append("</table><h2>Trend by month</h2>")
    if months:
        out.append(f'<img alt="trend by month" src="data:image/png;base64,'
                   f'{_trend_png(months, target)}">')
    out.append("<table><tr><th>month</th><th>incidents</th><th>P50</th><th>P90</th>"
               "<th>within target</th></tr>")
    for mo in months:
        out.append(f"<tr><td>{mo['month']}</td><td class=n>{mo['count']:,}</td>"
                   f"<td class=n>{_mmss(mo['p50'])}</td>{over(mo['p90'])}"
                   f"<td class=n>{_pct(mo['within_target'])}</td></tr>")
    out.append("</table><p class=meta>Intervals longer than a day or negative are data errors "
               "and left out. Map data © OpenStreetMap contributors.</p></body></html>")
    return "\n".join(out)
