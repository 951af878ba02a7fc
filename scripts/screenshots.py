"""Take the README's console screenshots from a running console (the demo: `make demo`).

    make demo DEMO_ARGS="--auto --headless"        # in one shell: Baltimore, 200 crews
    .venv/bin/python scripts/screenshots.py        # in another, with the same environment

Writes docs/screenshots/dispatcher-map.png (the dispatcher's map: the city's own vector tiles
with street names, crews clustered) and docs/screenshots/supervisor-board.png (the supervisor's
board). The demo's dispatcher bot sends one crew per call, so to show joint actions the script
first sends a second crew (the best recommended one not yet there) to the most urgent open
incidents as the supervisor (``--backup N``, default 2; 0 leaves the demo as it is).

It resets two users of its own (``shots_dispatcher``, ``shots_supervisor``, a new random
password each run) in the database the environment points at, drives Debian's Chromium through
Playwright (no `playwright install`), and fails rather than write a picture that does not show
what the README says: no street names, no clusters, no board.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("GEODISPATCH_CHROMIUM", "/usr/bin/chromium")


def reset_users(region: str) -> dict[str, str]:
    """(Re)create the two screenshot users; return username -> password."""
    from geodispatch.db import app_engine, session_factory, transaction
    from geodispatch.settings import get_settings
    from geodispatch.users.service import upsert_user

    settings = get_settings()
    engine = app_engine(settings)
    out = {}
    try:
        with transaction(session_factory(engine)) as session:
            for role in ("dispatcher", "supervisor"):
                name, pw = f"shots_{role}", secrets.token_urlsafe(12)
                upsert_user(session=session, username=name, password=pw, role=role,
                            region=region, full_name=f"Screenshots {role}", language="en")
                out[name] = pw
    finally:
        engine.dispose()
    return out


def log_in(page: Any, base: str, username: str, password: str) -> None:
    page.goto(base + "/")
    page.fill("[data-testid=login-username]", username)
    page.fill("[data-testid=login-password]", password)
    page.click("[data-testid=login-submit]")
    page.wait_for_selector("[data-testid=conn][data-state=live]")


def dispatcher_map(page: Any, base: str, user: str, pw: str, out: Path, zoom: int) -> str:
    log_in(page, base, user, pw)
    page.wait_for_function("() => window.gd.map && window.gd.map.gdBase")
    kind = page.evaluate("window.gd.map.gdBase.kind")
    if kind != "vector":
        raise SystemExit(f"the base map is {kind!r}, not the vector tiles: build them "
                         "(`geodispatch tiles build`) before taking the screenshot")
    page.wait_for_function("() => Object.values(window.gd.units).filter(u => u.lat != null)"
                           ".length >= 20", timeout=60_000)
    # The middle of the fleet: the median crew position.
    centre = page.evaluate(
        "(() => { const u = Object.values(window.gd.units).filter(x => x.lat != null);"
        " const med = (a) => a.sort((p, q) => p - q)[Math.floor(a.length / 2)];"
        " return [med(u.map(x => x.lat)), med(u.map(x => x.lng))]; })()")
    page.evaluate(f"void window.gd.map.setView([{centre[0]}, {centre[1]}], {zoom},"
                  " {animate: false})")
    page.wait_for_function("() => window.gd.map.gdBase.drawnLabels.size >= 8", timeout=30_000)
    page.wait_for_timeout(2500)  # the labeler finishes the viewport, clusters settle
    clusters = page.locator("[data-testid=crew-cluster]").count()
    labels = page.locator(".leaflet-tooltip.unit-label").count()
    streets = page.evaluate("[...window.gd.map.gdBase.drawnLabels].length")
    if clusters == 0:
        raise SystemExit("no crew clusters in view: pass a smaller --zoom")
    page.screenshot(path=str(out))
    return f"{out}: {clusters} clusters, {labels} call signs, {streets} names painted"


def send_backup(base: str, user: str, pw: str, n: int) -> list[str]:
    """A second crew to the ``n`` most urgent open incidents that have one; their references."""
    import httpx

    tok = httpx.post(f"{base}/api/auth/token", data={"username": user, "password": pw})
    tok.raise_for_status()
    h = {"Authorization": f"Bearer {tok.json()['access_token']}"}
    board = httpx.get(f"{base}/api/supervisor/board", headers=h, timeout=30).json()
    joint = {j["incident_id"] for j in board["joint"]}
    single: dict[int, tuple[int, str]] = {}
    for z in board["zones"]:
        for c in z["crews"]:
            i = c["incident"]
            if i and i["id"] not in joint:
                single[i["id"]] = (i["priority"], i["reference"])
    sent = []
    for iid, (_prio, ref) in sorted(single.items(), key=lambda kv: kv[1]):
        if len(sent) >= n:
            break
        reco = httpx.post(f"{base}/api/incidents/{iid}/recommend", headers=h, json={},
                          timeout=30)
        if reco.status_code != 200 or not reco.json().get("ranked"):
            continue
        unit = reco.json()["ranked"][0]["unit_id"]
        r = httpx.post(f"{base}/api/incidents/{iid}/assignments", headers=h, timeout=30,
                       json={"unit_id": unit})
        if r.status_code == 201:
            sent.append(ref)
    return sent


def supervisor_board(page: Any, base: str, user: str, pw: str, out: Path) -> str:
    log_in(page, base, user, pw)
    page.click("[data-testid=tab-board]")
    page.wait_for_selector("[data-testid=board-zone]", timeout=30_000)
    page.wait_for_timeout(1000)
    zones = page.locator("[data-testid=board-zone]").count()
    crews = page.locator("[data-testid=board-crew]").count()
    joint = page.locator("#board [data-testid=board-joint-item]").count()
    page.screenshot(path=str(out))
    return f"{out}: {zones} sectors, {crews} crews, {joint} joint actions"


def main(argv: list[str] | None = None) -> int:
    from geodispatch.settings import get_settings

    settings = get_settings()
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--base", default=f"http://127.0.0.1:{settings.api_port}",
                   help="the running console (default: the demo's address)")
    p.add_argument("--region", default=settings.default_region)
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    p.add_argument("--zoom", type=int, default=15, help="the dispatcher map's zoom")
    p.add_argument("--only", choices=("map", "board"), default=None)
    p.add_argument("--backup", type=int, default=2,
                   help="send a second crew to this many incidents first (joint actions)")
    args = p.parse_args(argv)
    users = reset_users(args.region)
    if args.backup and args.only != "map":
        sent = send_backup(args.base, "shots_supervisor", users["shots_supervisor"], args.backup)
        print(f"second crew sent to {', '.join(sent) or 'no incident'}", flush=True)
    from playwright.sync_api import sync_playwright

    args.out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                     args=["--no-sandbox", "--disable-gpu", "--headless"])
        try:
            for what in ("map", "board"):
                if args.only and args.only != what:
                    continue
                ctx = browser.new_context(viewport={"width": 1440, "height": 900},
                                          locale="en-GB")
                ctx.add_init_script("localStorage.setItem('gd.lang', 'en');"
                                    " localStorage.removeItem('gd.crewFilter');")
                page = ctx.new_page()
                page.set_default_timeout(20_000)
                try:
                    if what == "map":
                        msg = dispatcher_map(page, args.base, "shots_dispatcher",
                                             users["shots_dispatcher"],
                                             args.out / "dispatcher-map.png", args.zoom)
                    else:
                        msg = supervisor_board(page, args.base, "shots_supervisor",
                                               users["shots_supervisor"],
                                               args.out / "supervisor-board.png")
                finally:
                    ctx.close()
                print(msg, flush=True)
        finally:
            browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
