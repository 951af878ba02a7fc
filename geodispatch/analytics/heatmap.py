"""Folium heatmaps of H3 cells: incident density, median / p90 response, share within target, gaps.

The page is **self-contained**: folium's default template loads Leaflet, jQuery, Bootstrap and
Font Awesome from CDNs, which a control room cannot reach. Here folium's CDN list is emptied and
Leaflet's JavaScript and CSS are inlined from the copy that ``scripts/fetch_assets.sh`` fetches
from the npm registry at setup time (``geodispatch/api/static/vendor/leaflet``); the legend is
plain HTML (no branca/d3). The only network use left is the tile layer of ``settings.tile_url``;
with an empty ``tile_url`` the map is fully offline (cells on a blank background). The
OpenStreetMap attribution is always shown, tiles or not.

Colours: response times use fixed bins around the target (so maps of different periods compare);
density uses quantile bins of the counts shown.
"""

from __future__ import annotations

import html
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import folium
from branca.element import MacroElement
from h3.api import basic_int as h3i
from jinja2 import Template
from sqlalchemy.orm import Session

from geodispatch.analytics.aggregates import CellStats, cell_stats
from geodispatch.analytics.basemap import add_base_map
from geodispatch.errors import ConfigurationError, InvalidInput
from geodispatch.geo import LatLng
from geodispatch.settings import Settings, get_settings
from geodispatch.zones import coverage

if TYPE_CHECKING:
    from geodispatch.zones.coverage import TimesRouter

log = logging.getLogger(__name__)

LEAFLET_DIR = Path(__file__).resolve().parent.parent / "api" / "static" / "vendor" / "leaflet"
OSM_ATTRIBUTION = (
    '&copy; <a href="https://www.openstreetmap.org/copyright">OpenStreetMap</a> contributors'
)
MIN_N = 5
"""Cells with fewer responses than this are drawn hatched grey: too few for a percentile."""

# Colour-blind safe sequential palette (ColorBrewer YlOrRd, 6 classes), green for "good".
_YLORRD = ("#ffffb2", "#fed976", "#feb24c", "#fd8d3c", "#f03b20", "#bd0026")
_GOOD_TO_BAD = ("#1a9850", "#91cf60", "#d9ef8b", "#fee08b", "#fc8d59", "#d73027")
_NO_DATA = "#bdbdbd"


@dataclass(frozen=True)
class Metric:
    """How one heatmap metric is read from :class:`CellStats` and coloured."""

    name: str
    title: str
    unit: str
    higher_is_worse: bool


METRICS = {
    "density": Metric("density", "Incidents per cell", "incidents", True),
    "median_response": Metric("median_response", "Median response time", "min", True),
    "p90_response": Metric("p90_response", "90th percentile response time", "min", True),
    "within_target": Metric("within_target", "Share of responses within target", "%", False),
    "coverage_gaps": Metric("coverage_gaps", "Coverage gaps (p90 over target)", "", True),
}


def _mmss(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    s = int(round(seconds))
    return f"{s // 60}:{s % 60:02d}"


def _bins(metric: str, values: Sequence[float], target_s: float) -> list[float]:
    """Upper bounds of the colour classes (the last is +inf)."""
    if metric in ("median_response", "p90_response"):
        t = target_s / 60.0
        return [0.5 * t, 0.75 * t, t, 1.25 * t, 1.5 * t, float("inf")]
    if metric == "within_target":
        return [50.0, 70.0, 80.0, 90.0, 95.0, float("inf")]
    if metric == "coverage_gaps":
        return [0.5, float("inf")]
    # density: quantiles of the counts shown, de-duplicated.
    vals = sorted(values)
    if not vals:
        return [float("inf")]
    qs = [vals[min(len(vals) - 1, int(q * len(vals)))] for q in (0.3, 0.5, 0.7, 0.85, 0.95)]
    bounds = sorted(set(qs))
    return [*bounds, float("inf")]


def _palette(metric: str, k: int) -> list[str]:
    if metric == "coverage_gaps":
        return ["#1a9850", "#d73027"][:k]
    base: tuple[str, ...] = _YLORRD if metric == "density" else _GOOD_TO_BAD
    if metric == "within_target":
        base = tuple(reversed(_GOOD_TO_BAD))
    return list(base[-k:]) if metric == "density" else list(base[:k])


def _value(metric: str, stats: CellStats, i: int) -> float | None:
    n = int(stats.n[i])
    if metric == "density":
        return float(stats.count[i])
    if n < MIN_N:
        return None
    if metric == "median_response":
        return float(stats.median_s[i]) / 60.0
    if metric == "p90_response":
        return float(stats.p90_s[i]) / 60.0
    if metric == "within_target":
        return 100.0 * float(stats.within_target[i])
    return 1.0 if float(stats.p90_s[i]) > stats.target_s else 0.0


def cell_features(stats: CellStats, metric: str) -> tuple[dict[str, Any], list[float], list[str]]:
    """GeoJSON of the cells with their figures and fill colour, plus the legend bins/colours."""
    values = [_value(metric, stats, i) for i in range(len(stats))]
    bins = _bins(metric, [v for v in values if v is not None], stats.target_s)
    colours = _palette(metric, len(bins))
    features = []
    for i, cell in enumerate(stats.cells.tolist()):
        v = values[i]
        colour = _NO_DATA if v is None else colours[next(k for k, b in enumerate(bins) if v <= b)]
        ring = [[lng, lat] for lat, lng in h3i.cell_to_boundary(cell)]
        ring.append(ring[0])
        n = int(stats.n[i])
        props = {
            "cell": h3i.int_to_str(cell),
            "incidents": int(stats.count[i]),
            "responses": n,
            "median": _mmss(float(stats.median_s[i])) if n else "–",
            "p90": _mmss(float(stats.p90_s[i])) if n else "–",
            "within": f"{100.0 * float(stats.within_target[i]):.1f} %" if n else "–",
            "fill": colour,
            "value": None if v is None else round(v, 2),
        }
        features.append({"type": "Feature", "properties": props,
                         "geometry": {"type": "Polygon", "coordinates": [ring]}})
    return {"type": "FeatureCollection", "features": features}, bins, colours


def _legend_html(metric: Metric, bins: list[float], colours: list[str], *, subtitle: str,
                 target_s: float) -> str:
    rows = []
    lo = 0.0
    for b, c in zip(bins, colours, strict=True):
        if metric.name == "coverage_gaps":
            label = "p90 within target" if b < 1 else "p90 over target (gap)"
        elif b == float("inf"):
            label = f"&gt; {lo:g} {metric.unit}"
        else:
            label = f"{lo:g} – {b:g} {metric.unit}"
        rows.append(f'<div><i style="background:{c}"></i>{label}</div>')
        lo = b
    rows.append(f'<div><i style="background:{_NO_DATA}"></i>fewer than {MIN_N} responses</div>')
    return f"""
<div class="gd-legend" role="region" aria-label="legend">
  <b>{html.escape(metric.title)}</b><br><small>{html.escape(subtitle)}</small>
  <small>target {_mmss(target_s)} min</small>
  {''.join(rows)}
</div>
<style>
.gd-legend {{ position: fixed; bottom: 28px; right: 10px; z-index: 1000; background: #fff;
  padding: 8px 10px; font: 12px/1.4 sans-serif; border-radius: 4px;
  box-shadow: 0 1px 4px rgba(0,0,0,.4); }}
.gd-legend small {{ display: block; color: #555; }}
.gd-legend i {{ display: inline-block; width: 14px; height: 14px; margin-right: 6px;
  vertical-align: middle; opacity: .8; border: 1px solid #999; }}
</style>"""


class _Attribution(MacroElement):
    """Adds a text to the map's attribution control (rendered after the map is created)."""

    _template = Template(
        "{% macro script(this, kwargs) %}"
        "{{ this._parent.get_name() }}.attributionControl.addAttribution({{ this.text }});"
        "{% endmacro %}"
    )

    def __init__(self, text: str) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._name = "Attribution"
        self.text = json.dumps(text)


def _inline_leaflet(m: folium.Map) -> None:
    js, css = LEAFLET_DIR / "leaflet.js", LEAFLET_DIR / "leaflet.css"
    if not (js.is_file() and css.is_file()):
        raise ConfigurationError(
            f"Leaflet is not in {LEAFLET_DIR}: run scripts/fetch_assets.sh (or `make services`) "
            "once to fetch it from the npm registry"
        )
    m.default_js = []
    m.default_css = []
    header = m.get_root().header  # type: ignore[attr-defined]
    header.add_child(folium.Element(f"<style>{css.read_text()}</style>"), name="leaflet_css")
    # "</script" cannot appear inside an inline script; Leaflet's source has none, but be safe.
    code = js.read_text().replace("</script", "<\\/script")
    header.add_child(folium.Element(f"<script>{code}</script>"), name="leaflet_js")


def _coverage_overlay(
    m: folium.Map, *, session: Session, router: TimesRouter | None, settings: Settings, res: int,
    target_s: float, cells: list[int], region: str | None,
) -> bool:
    """Current road coverage by available crews (zones domain), when it and a router exist."""
    if router is None:
        return False

    sources = coverage.database_sources(session=session, stale_after_s=settings.stale_after_s,
                                        region=region)
    result = coverage.compute_coverage(router=router, sources=sources,
                                       target_s=target_s, res=res, cells=cells)
    layer = coverage.coverage_geojson(result, merge=True)
    folium.GeoJson(
        layer,
        name=f"Road coverage now ({len(sources)} crews)",
        style_function=lambda f: {
            "color": "#000", "weight": 2, "dashArray": "4 4", "fillOpacity": 0.0,
        } if f["properties"]["status"] == "gap" else {"opacity": 0, "fillOpacity": 0},
        tooltip=folium.GeoJsonTooltip(fields=["status", "cells"], aliases=["road coverage",
                                                                           "cells"]),
    ).add_to(m)
    return True


def build_heatmap(
    *,
    session: Session,
    metric: str,
    res: int,
    start: datetime | None,
    end: datetime | None,
    region: str | None = None,
    target_s: float | None = None,
    settings: Settings | None = None,
    router: TimesRouter | None = None,
) -> folium.Map:
    """The folium map of one metric per H3 cell (see :func:`render_heatmap`)."""
    if metric not in METRICS:
        raise InvalidInput(f"unknown metric {metric!r}; one of {sorted(METRICS)}")
    settings = settings or get_settings()
    target = settings.response_target_s if target_s is None else target_s
    stats = cell_stats(session=session, res=res, start=start, end=end, region=region,
                       target_s=target)
    spec = METRICS[metric]
    geojson, bins, colours = cell_features(stats, metric)
    m = folium.Map(location=None, tiles=None, control_scale=True, prefer_canvas=False)
    _inline_leaflet(m)
    add_base_map(m, settings, settings.tile_attribution or OSM_ATTRIBUTION, name="OpenStreetMap")
    # Always credit OpenStreetMap (the road data and the tiles both come from it).
    _Attribution(settings.tile_attribution or OSM_ATTRIBUTION).add_to(m)
    folium.GeoJson(
        geojson,
        name=spec.title,
        style_function=lambda f: {"fillColor": f["properties"]["fill"], "color": "#555",
                                  "weight": 0.6, "fillOpacity": 0.65},
        highlight_function=lambda f: {"weight": 2.5, "color": "#000"},
        # folium checks tooltip fields against the first feature: none without cells.
        tooltip=folium.GeoJsonTooltip(
            fields=["cell", "incidents", "responses", "median", "p90", "within"],
            aliases=["H3 cell", "incidents", "with response", "median (m:s)", "p90 (m:s)",
                     "within target"],
            sticky=True,
        ) if geojson["features"] else None,
    ).add_to(m)
    gaps_drawn = False
    if metric == "coverage_gaps":
        gaps_drawn = _coverage_overlay(m, session=session, router=router, settings=settings,
                                       res=res, target_s=target, cells=stats.cells.tolist(),
                                       region=region)
    period = f"{start:%Y-%m-%d %H:%M} – {end:%Y-%m-%d %H:%M} UTC" if start and end else "all time"
    subtitle = f"H3 res {res}, {int(stats.count.sum())} incidents, {period}"
    if region:
        subtitle += f", region {region}"
    if metric == "coverage_gaps":
        subtitle += "; dashed: no crew within target now" if gaps_drawn else ""
    legend = _legend_html(spec, bins, colours, subtitle=subtitle, target_s=target)
    m.get_root().html.add_child(folium.Element(legend))  # type: ignore[attr-defined]
    folium.LayerControl(collapsed=False).add_to(m)
    if len(stats):
        lats, lngs = [], []
        for cell in stats.cells.tolist():
            for lat, lng in h3i.cell_to_boundary(cell):
                lats.append(lat)
                lngs.append(lng)
        sw, ne = LatLng(min(lats), min(lngs)), LatLng(max(lats), max(lngs))
        m.fit_bounds([sw.to_leaflet(), ne.to_leaflet()])
    else:
        m.location = LatLng(50.4501, 30.5234).to_leaflet()  # Kyiv, when there is nothing to show
        m.options["zoom"] = 11
    return m


def heatmap_html(**kwargs: Any) -> str:
    """The self-contained HTML page of :func:`build_heatmap` (same keyword arguments)."""
    return str(build_heatmap(**kwargs).get_root().render())


def render_heatmap(
    *,
    session: Session,
    metric: str,
    res: int,
    start: datetime | None,
    end: datetime | None,
    out: Path,
    region: str | None = None,
    target_s: float | None = None,
    router: TimesRouter | None = None,
) -> Path:
    """Write a self-contained HTML heatmap of ``metric`` per H3 cell of resolution ``res``.

    Parameters
    ----------
    session : Session
        Read-only use.
    metric : str
        ``density``, ``median_response``, ``p90_response``, ``within_target`` or
        ``coverage_gaps`` (cells whose p90 response exceeds the target; with ``router`` given
        and the zones domain installed, today's road coverage gaps are drawn over it).
    res : int
        H3 resolution (7, 8 or 9).
    start, end : datetime, optional
        Period ``[start, end)`` of call receipt (timezone-aware).
    out : Path
        Output file; its folder is created.

    Returns
    -------
    Path
        ``out``.
    """
    page = heatmap_html(session=session, metric=metric, res=res, start=start, end=end,
                        region=region, target_s=target_s, router=router)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    log.info("wrote %s (%s, res %d, %d bytes)", out, metric, res, len(page))
    return out
