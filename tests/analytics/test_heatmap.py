"""Heatmap pages: legend, OSM attribution, tooltips with numbers, nothing fetched from a CDN."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from geodispatch.analytics.heatmap import METRICS, render_heatmap
from geodispatch.analytics.importer import ImportResult
from tests.analytics.conftest import SF_REGION

START = datetime.fromisoformat("2016-12-31T08:00:00Z")
END = datetime.fromisoformat("2017-01-08T08:00:00Z")


def external_urls(page: str) -> list[str]:
    """What the page would fetch by itself: remote scripts, stylesheets, images and CSS imports."""
    remote = r"""\s*=\s*["']((?:https?:)?//[^"']+)"""
    tags = re.findall(r"<(?:script|img|iframe)[^>]*\ssrc" + remote, page)
    links = re.findall(r"<link[^>]*\shref" + remote, page)
    css = re.findall(r"""url\(\s*["']?((?:https?:)?//[^"')]+)""", page)
    return tags + links + css


@pytest.mark.parametrize("metric", sorted(METRICS))
def test_heatmap_page_is_complete_and_offline(
    db: Session, sf_imported: ImportResult, artifacts: Path, metric: str
) -> None:
    """Every metric renders a page with legend, attribution, tooltips and no CDN assets."""
    out = render_heatmap(session=db, metric=metric, res=8, start=START, end=END,
                         out=artifacts / f"analytics_heatmap_{metric}.html", region=SF_REGION)
    page = out.read_text()
    assert "gd-legend" in page and METRICS[metric].title in page
    assert "OpenStreetMap" in page and "addAttribution" in page
    assert "GeoJsonTooltip" in page or "bindTooltip" in page
    assert '"median": "' in page and '"p90": "' in page  # the numbers shown in tooltips
    assert "L.map(" in page and "Leaflet" in page  # Leaflet inlined, not linked
    assert external_urls(page) == []
    assert "cdn.jsdelivr" not in page and "code.jquery" not in page


class _FakeRouter:
    """Road nodes at the SF cells' centres; every node 5 min from the nearest (absent) crew."""

    def __init__(self, cells: list[str]) -> None:
        import h3
        import numpy as np

        pts = [h3.cell_to_latlng(c) for c in cells]
        self.node_lat = np.array([p[0] for p in pts])
        self.node_lng = np.array([p[1] for p in pts])
        self.graph = self  # its own "graph": the node arrays coverage groups by cell

    def multi_source_times(self, sources: object, limit_s: float) -> object:
        import numpy as np

        return np.full(self.node_lat.size, 300.0)


def test_coverage_gaps_with_live_road_coverage(
    db: Session, sf_imported: ImportResult, artifacts: Path
) -> None:
    """With a router, today's road-coverage gaps (zones domain) are drawn over the history."""
    from geodispatch.analytics.aggregates import cell_stats

    cells = [format(c, "x") for c in cell_stats(session=db, res=8, region=SF_REGION).cells]
    out = render_heatmap(session=db, metric="coverage_gaps", res=8, start=START, end=END,
                         out=artifacts / "analytics_heatmap_coverage_live.html",
                         region=SF_REGION, router=_FakeRouter(cells))
    page = out.read_text()
    assert "Road coverage now (0 crews)" in page and "no crew within target now" in page


def test_empty_period_still_renders(db: Session, artifacts: Path) -> None:
    """A period without incidents gives a valid page with a legend and no cells."""
    out = render_heatmap(session=db, metric="density", res=9,
                         start=datetime.fromisoformat("1990-01-01T00:00:00Z"),
                         end=datetime.fromisoformat("1990-01-02T00:00:00Z"),
                         out=artifacts / "analytics_heatmap_empty.html")
    page = out.read_text()
    assert "gd-legend" in page and "0 incidents" in page and external_urls(page) == []
