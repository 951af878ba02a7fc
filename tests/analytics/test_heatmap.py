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
