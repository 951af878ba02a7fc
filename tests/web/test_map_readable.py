"""A readable dispatcher map in Chromium: with many crews the map draws clusters, not a call sign
per crew; the crews' filter (status, kind) hides and brings back crews and survives a reload; an
opened incident is framed with its recommended crews and the route."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine

from geodispatch.api.app import create_app
from geodispatch.settings import Settings
from tests.api.conftest import Account
from tests.helpers import login, running_server
from tests.web.conftest import crew_units
from tests.web.test_dispatcher_map import SCENE, log_in, report

pytestmark = pytest.mark.browser

N = 120
ON_SCENE = 20


@pytest.fixture(scope="module")
def fleet(engine: Engine, admin_engine: Engine) -> Iterator[list[dict[str, Any]]]:
    """120 crews within about 2 km of the scene; the first 20 on scene."""
    with crew_units(engine, admin_engine, N, "M") as out:
        yield out


@pytest.fixture(scope="module")
def server(settings: Settings, fleet: list[dict[str, Any]],
           accounts: dict[str, Account]) -> Iterator[str]:
    app = create_app(settings.model_copy(update={"serve_ingest": False, "tile_url": ""}))
    rnd = random.Random(16)
    with running_server(app) as base:
        for c in fleet:
            c["lat"] = SCENE[0] + rnd.uniform(-0.018, 0.018)
            c["lng"] = SCENE[1] + rnd.uniform(-0.022, 0.022)
            report(base, c, c["lat"], c["lng"])
        d = accounts["dispatcher"]
        h = login(base, d.username, d.password)
        for c in fleet[:ON_SCENE]:
            r = httpx.post(f"{base}/api/dispatch/units/{c['id']}/status", headers=h,
                           json={"status": "on_scene"})
            assert r.status_code == 200, r.text
        yield base


@pytest.fixture()
def errors(page: Any) -> Iterator[list[str]]:
    """Script errors of the page: none may happen."""
    out: list[str] = []
    page.on("pageerror", lambda e: out.append(str(e)))
    yield out
    assert out == []


def _wait_markers(page: Any, fleet: list[dict[str, Any]]) -> None:
    ids = [c["id"] for c in fleet]
    page.wait_for_function("ids => ids.every(id => window.gd.unitMarkers[id])", arg=ids)


def _alone(page: Any, fleet: list[dict[str, Any]]) -> list[int]:
    """Our crews drawn as themselves (a clustered marker is off the map, its cluster on it)."""
    return list(page.evaluate(
        "ids => ids.filter(id => { const m = window.gd.unitMarkers[id], L = window.gd.layers.crews;"
        " return L.hasLayer(m) && window.gd.map.hasLayer(m); })", [c["id"] for c in fleet]))


def test_many_crews_are_clusters_not_labels(page: Any, server: str,
                                             accounts: dict[str, Account],
                                             fleet: list[dict[str, Any]],
                                             errors: list[str]) -> None:
    """At city zoom 120 crews are a few clusters with counts; call signs show close in."""
    page.add_init_script("localStorage.removeItem('gd.crewFilter')")
    try:
        log_in(page, server, accounts["dispatcher"])
    except Exception:
        raise AssertionError(errors) from None
    _wait_markers(page, fleet)
    page.evaluate(f"void window.gd.map.setView([{SCENE[0]}, {SCENE[1]}], 13, {{animate: false}})")
    page.wait_for_timeout(600)
    clusters = page.locator("[data-testid=crew-cluster]")
    assert clusters.count() >= 2
    counts = [int(x) for x in clusters.evaluate_all("els => els.map(e => e.dataset.count)")]
    alone = _alone(page, fleet)
    assert len(alone) <= 15, alone  # not 120 labels
    assert all(n >= 2 for n in counts)
    # Every crew is drawn: by itself or inside a cluster on the screen.
    drawn = page.evaluate(
        "ids => ids.filter(id => { const m = window.gd.unitMarkers[id];"
        " return window.gd.map.hasLayer(m) || !!window.gd.layers.crews.getVisibleParent(m); })"
        ".length", [c["id"] for c in fleet])
    assert drawn == N
    labels = page.locator(".leaflet-tooltip.unit-label")
    assert labels.count() <= 25, labels.count()
    # Labels of the crews drawn by themselves only; none of a clustered crew.
    texts = set(labels.all_inner_texts())
    ours = {c["call_sign"] for c in fleet}
    assert texts & ours == {c["call_sign"] for c in fleet if c["id"] in alone}
    # Close in (no clustering from zoom 17): the crew there stands alone with its call sign.
    c = fleet[50]
    page.evaluate(f"void window.gd.map.setView([{c['lat']}, {c['lng']}], 17, {{animate: false}})")
    page.wait_for_function("id => window.gd.map.hasLayer(window.gd.unitMarkers[id])",
                           arg=c["id"])
    page.wait_for_function("cs => [...document.querySelectorAll('.leaflet-tooltip.unit-label')]"
                           ".some(e => e.textContent === cs)", arg=c["call_sign"])


def test_filter_hides_a_status_and_is_kept(page: Any, server: str,
                                           accounts: dict[str, Account],
                                           fleet: list[dict[str, Any]],
                                           errors: list[str]) -> None:
    """Unticking "on scene" takes those crews off the map (not the others), after a reload too;
    a kind is filtered the same way; ticking again brings them back."""
    page.add_init_script("if (!sessionStorage.getItem('t')) {"
                         " localStorage.removeItem('gd.crewFilter');"
                         " sessionStorage.setItem('t', '1'); }")
    log_in(page, server, accounts["dispatcher"])
    _wait_markers(page, fleet)
    in_layer = ("ids => ids.filter(id => window.gd.layers.crews.hasLayer("
                "window.gd.unitMarkers[id])).length")
    scene_ids = [c["id"] for c in fleet[:ON_SCENE]]
    free_ids = [c["id"] for c in fleet[ON_SCENE:]]
    assert page.evaluate(in_layer, scene_ids) == ON_SCENE
    page.click("[data-testid=crew-filter-toggle]")
    page.uncheck("[data-testid=crew-filter-status-on_scene]")
    page.wait_for_function(f"ids => ({in_layer})(ids) === 0", arg=scene_ids)
    assert page.evaluate(in_layer, free_ids) == N - ON_SCENE
    # The control's count (redrawn 200 ms after changes) says how many are shown of how many.
    page.wait_for_function(
        "n => { const g = window.gd;"
        " const el = document.querySelector('[data-testid=crew-filter-count]');"
        " const shown = Object.values(g.unitMarkers)"
        "  .filter(m => g.layers.crews.hasLayer(m)).length;"
        " return Number(el.dataset.shown) === shown"
        "  && Number(el.dataset.total) === Object.keys(g.unitMarkers).length"
        "  && Number(el.dataset.total) - shown >= n; }", arg=ON_SCENE)
    assert "on_scene" in page.evaluate("JSON.parse(localStorage.getItem('gd.crewFilter')).statuses")

    page.reload()
    page.wait_for_selector("[data-testid=conn][data-state=live]")
    _wait_markers(page, fleet)
    assert page.evaluate(in_layer, scene_ids) == 0
    assert page.evaluate(in_layer, free_ids) == N - ON_SCENE
    page.click("[data-testid=crew-filter-toggle]")
    assert not page.is_checked("[data-testid=crew-filter-status-on_scene]")
    assert page.is_checked("[data-testid=crew-filter-status-available]")
    # By kind: all our crews are patrol cars.
    page.uncheck("[data-testid=crew-filter-kind-patrol_car]")
    page.wait_for_function(f"ids => ({in_layer})(ids) === 0", arg=free_ids)
    page.check("[data-testid=crew-filter-kind-patrol_car]")
    page.check("[data-testid=crew-filter-status-on_scene]")
    page.wait_for_function(f"ids => ({in_layer})(ids) === {N}",
                           arg=scene_ids + free_ids)


def test_opened_incident_is_framed_with_its_crews(page: Any, server: str,
                                                  accounts: dict[str, Account],
                                                  fleet: list[dict[str, Any]],
                                                  errors: list[str]) -> None:
    """Opening a call frames it with the recommended crews and route; the button does it again
    after the map was moved away."""
    page.add_init_script("localStorage.removeItem('gd.crewFilter')")
    d = accounts["dispatcher"]
    h = login(server, d.username, d.password)
    r = httpx.post(f"{server}/api/incidents", headers=h, json={
        "lat": SCENE[0], "lng": SCENE[1], "category": "theft", "description": "zoom to fit",
        "idempotency_key": uuid.uuid4().hex})
    assert r.status_code == 201, r.text
    inc = r.json()["id"]
    log_in(page, server, d)
    _wait_markers(page, fleet)
    page.evaluate("void window.gd.map.setView([39.20, -76.50], 11, {animate: false})")
    page.click(f"[data-testid=queue-item][data-id='{inc}']")
    page.wait_for_selector("[data-testid=reco-row]")
    page.wait_for_function(f"() => window.gd.lastFit && window.gd.lastFit.id === {inc}"
                           " && window.gd.lastFit.units.length >= 2 && window.gd.routeLayer")
    page.wait_for_timeout(400)  # the fit's animation
    inside = ("([id, uids]) => { const b = window.gd.map.getBounds(), g = window.gd;"
              " const i = g.incidents[id]; if (!b.contains([i.lat, i.lng])) return 'incident';"
              " for (const u of uids) if (!b.contains([g.units[u].lat, g.units[u].lng]))"
              "   return 'unit ' + u;"
              " if (!b.contains(g.routeLayer.getBounds())) return 'route'; return 'ok'; }")
    ranked = page.evaluate("[...document.querySelectorAll('[data-testid=reco-row]')]"
                           ".slice(0, 3).map(r => Number(r.dataset.unit))")
    assert len(ranked) >= 2
    assert page.evaluate(inside, [inc, ranked]) == "ok"
    # Framed, not the whole city: the fit is tighter than the 4 km spread of the fleet.
    span = page.evaluate("(() => { const b = window.gd.map.getBounds();"
                         " return b.getNorth() - b.getSouth(); })()")
    assert span < 0.06, span

    page.evaluate("void window.gd.map.setView([39.40, -76.40], 12, {animate: false})")
    assert page.evaluate(inside, [inc, ranked]) == "incident"
    page.click("[data-testid=zoom-fit]")
    page.wait_for_timeout(400)
    assert page.evaluate(inside, [inc, ranked]) == "ok"
