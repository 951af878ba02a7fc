"""`geodispatch report`: the commander's HTML report, its figures checked against pandas."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from geodispatch import cli
from geodispatch.analytics import cli as analytics_cli
from geodispatch.analytics.importer import ImportResult
from geodispatch.analytics.report import (
    build_report,
    by_month,
    cells,
    headline,
    resolve_scope,
)
from geodispatch.errors import InvalidInput
from geodispatch.settings import get_settings
from tests.analytics.conftest import SF_REGION, SF_TZ


def _pandas_calls(path: Path) -> pd.DataFrame:
    """Independently: per call, received (UTC) and total response (received -> first on scene)."""
    raw = pd.read_csv(path)
    fmt = "%m/%d/%Y %I:%M:%S %p"
    g = raw.assign(rec=pd.to_datetime(raw["Received DtTm"], format=fmt),
                   ons=pd.to_datetime(raw["On Scene DtTm"], format=fmt)).groupby("Call Number")
    calls = pd.DataFrame({"received": g["rec"].min().dt.tz_localize(SF_TZ).dt.tz_convert("UTC"),
                          "on_scene": g["ons"].min().dt.tz_localize(SF_TZ).dt.tz_convert("UTC")})
    total = (calls["on_scene"] - calls["received"]).dt.total_seconds()
    calls["total"] = total.where((total >= 0) & (total <= 86400))
    return calls


def test_headline_and_months_match_pandas(
    db: Session, sf_imported: ImportResult, sf_calls_file: Path
) -> None:
    """P50/P90 of total response, share within target and the monthly figures equal pandas."""
    calls = _pandas_calls(sf_calls_file)
    scope = resolve_scope(session=db, start=None, end=None, region=SF_REGION)
    head = headline(db, scope, 480.0)
    assert head["count"] == len(calls) == 3560
    t = calls["total"].dropna()
    assert head["total_response_s"]["n"] == len(t)
    assert head["total_response_s"]["p50"] == pytest.approx(t.quantile(0.5))
    assert head["total_response_s"]["p90"] == pytest.approx(t.quantile(0.9))
    assert head["within_target"] == pytest.approx((t <= 480).mean())
    tz = get_settings().analytics_timezone
    months = by_month(db, scope, 480.0, tz)
    local = calls.assign(m=calls["received"].dt.tz_convert(tz).dt.strftime("%Y-%m"))
    want = local.groupby("m")["total"]
    assert [m["month"] for m in months] == list(want.size().index)
    for m in months:
        assert m["count"] == want.size()[m["month"]]
        assert m["p90"] == pytest.approx(want.quantile(0.9)[m["month"]])


def test_period_and_zone_scope(db: Session, sf_imported: ImportResult,
                               sf_calls_file: Path) -> None:
    """--from/--to cut the incidents; a zone covers its sector's incidents only."""
    calls = _pandas_calls(sf_calls_file)
    start, end = datetime(2017, 1, 2, tzinfo=UTC), datetime(2017, 1, 4, 12, tzinfo=UTC)
    scope = resolve_scope(session=db, start=start, end=end, region=SF_REGION)
    inside = calls[(calls["received"] >= start) & (calls["received"] < end)]
    assert headline(db, scope, 600.0)["count"] == len(inside)
    zone_id = db.execute(text(
        "INSERT INTO zones (code, name, level, region, res, cells) VALUES "
        "('RPT1', 'Report sector', 'sector', :r, 8, '{}') RETURNING id"),
        {"r": SF_REGION}).scalar_one()
    tagged = db.execute(text(
        "UPDATE response_intervals SET sector_id = :z WHERE incident_id IN (SELECT incident_id "
        "FROM response_intervals WHERE region = :r ORDER BY incident_id LIMIT 100)"),
        {"z": zone_id, "r": SF_REGION}).rowcount
    zscope = resolve_scope(session=db, start=None, end=None, region=SF_REGION, zone="RPT1")
    assert zscope.sector_ids == (zone_id,) and tagged == 100
    assert headline(db, zscope, 600.0)["count"] == 100
    page = build_report(session=db, scope=zscope, target_s=600.0)
    assert "zone RPT1 (Report sector)" in page and "100 incidents" in page
    with pytest.raises(InvalidInput, match="no current zone"):
        resolve_scope(session=db, start=None, end=None, zone="NOPE")
    with pytest.raises(InvalidInput, match="after"):
        resolve_scope(session=db, start=end, end=start)


def test_report_page_is_self_contained(
    db: Session, sf_imported: ImportResult, sf_calls_file: Path
) -> None:
    """The page inlines Leaflet and the chart, lists the worst cells, and has no remote script."""
    scope = resolve_scope(session=db, start=None, end=None, region=SF_REGION)
    page = build_report(session=db, scope=scope, target_s=480.0)
    assert "<script src=" not in page and "<link rel" not in page.split("<iframe")[0]
    assert "srcdoc=" in page and "data:image/png;base64," in page
    for section in ("Headline", "P90 total response per cell", "By zone", "Worst cells",
                    "Trend by month"):
        assert section in page
    stats = cells(db, scope, 480.0)
    eligible = np.where(stats.n >= 5, stats.p90_s, -1.0)
    worst = int(stats.cells[int(np.argmax(eligible))])
    assert format(worst, "x") in page.split("Worst cells")[1].split("</tr>")[1]


def test_report_command_writes_the_page(
    db: Session, sf_imported: ImportResult, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`geodispatch report --region R --from --to --out F` writes F; a wrong zone is one line."""
    def factory() -> Session:
        return Session(bind=db.connection(), join_transaction_mode="create_savepoint")

    monkeypatch.setattr(analytics_cli, "_factory", lambda: factory)
    out = tmp_path / "r" / "report.html"
    assert cli.main(["report", "--region", SF_REGION, "--from", "2017-01-01T00:00:00+00:00",
                     "--to", "2017-01-08T00:00:00+00:00", "--out", str(out)]) == 0
    assert out.read_text().startswith("<!doctype html>")
    assert cli.main(["report", "--zone", "NOPE", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "no current zone with code 'NOPE'" in err and "Traceback" not in err


def test_category_and_priority_filters(db: Session, sf_imported: ImportResult) -> None:
    """--category / --priority narrow every figure of the report to those incidents, and the
    page says so; a priority outside 1-4 is refused."""
    rows = pd.DataFrame([dict(r) for r in db.execute(text(
        "SELECT category, priority, total_response_s FROM response_intervals WHERE region = :r"),
        {"r": SF_REGION}).mappings()])
    cat = str(rows["category"].mode()[0])
    for kwargs, sel in (({"category": cat}, rows["category"] == cat),
                        ({"priority": 1}, rows["priority"] == 1),
                        ({"category": cat, "priority": 2},
                         (rows["category"] == cat) & (rows["priority"] == 2))):
        scope = resolve_scope(session=db, start=None, end=None, region=SF_REGION,
                              **kwargs)  # type: ignore[arg-type]
        head = headline(db, scope, 480.0)
        want = rows[sel]["total_response_s"].dropna()
        assert head["count"] == int(sel.sum()) > 0
        assert head["total_response_s"]["p90"] == pytest.approx(want.quantile(0.9))
        assert int(cells(db, scope, 480.0).count.sum()) == int(sel.sum())
    page = build_report(session=db, scope=resolve_scope(
        session=db, start=None, end=None, region=SF_REGION, category=cat, priority=1),
        target_s=480.0)
    assert f"category {cat}, priority 1" in page
    with pytest.raises(InvalidInput, match="priority"):
        resolve_scope(session=db, start=None, end=None, priority=7)
