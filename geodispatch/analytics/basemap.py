"""The offline vector base map on the analyst's folium pages (heatmap, report).

When the server has vector tiles (``GEODISPATCH_TILES_PATH`` built, ``GEODISPATCH_VECTOR_TILES``
on), the page inlines protomaps-leaflet and ``static/basemap.js`` (as it inlines Leaflet) and
calls ``gdBaseMap`` on the map, which draws ``/tiles`` of the server the page came from; when
those do not answer (a saved copy opened from disk, tiles turned off) the page falls back to the
raster ``GEODISPATCH_TILE_URL`` in the browser. Without tiles the raster layer is added as before.
"""

from __future__ import annotations

import json
from pathlib import Path

import folium
from branca.element import MacroElement
from jinja2 import Template

from geodispatch.settings import Settings

STATIC_DIR = Path(__file__).resolve().parent.parent / "api" / "static"
PROTOMAPS_JS = STATIC_DIR / "vendor" / "protomaps-leaflet" / "protomaps-leaflet.js"
BASEMAP_JS = STATIC_DIR / "basemap.js"


class _VectorBase(MacroElement):
    """``gdBaseMap(map, {fallback})`` after the map is created; the map is ``window.gdMap``."""

    _template = Template(
        "{% macro script(this, kwargs) %}"
        "window.gdMap = {{ this._parent.get_name() }};"
        "gdBaseMap({{ this._parent.get_name() }}, {attribution: {{ this.attribution }},"
        " fallback: function () {"
        " var url = {{ this.tile_url }}; if (url) L.tileLayer(url, {maxZoom: 19,"
        " attribution: {{ this.attribution }}}).addTo({{ this._parent.get_name() }}); }});"
        "{% endmacro %}"
    )

    def __init__(self, tile_url: str, attribution: str) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._name = "VectorBase"
        self.tile_url = json.dumps(tile_url)
        self.attribution = json.dumps(attribution)


def add_base_map(m: folium.Map, settings: Settings, attribution: str, *, name: str) -> str:
    """Add the base layer to ``m``: ``"vector"`` (raster as the browser's fallback), ``"raster"``
    or ``"none"`` (no tiles built and no tile URL: the cells on a blank background)."""
    vector = (settings.vector_tiles and settings.resolved_tiles_path.is_file()
              and PROTOMAPS_JS.is_file() and BASEMAP_JS.is_file())
    if vector:
        header = m.get_root().header  # type: ignore[attr-defined]
        for key, path in (("protomaps_js", PROTOMAPS_JS), ("basemap_js", BASEMAP_JS)):
            code = path.read_text().replace("</script", "<\\/script")
            header.add_child(folium.Element(f"<script>{code}</script>"), name=key)
        _VectorBase(settings.tile_url, attribution).add_to(m)
        return "vector"
    if settings.tile_url:
        folium.TileLayer(tiles=settings.tile_url, attr=attribution, name=name,
                         max_zoom=19).add_to(m)
        return "raster"
    return "none"
