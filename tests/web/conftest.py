"""Browser fixtures: Debian's headless Chromium driven by Playwright (no `playwright install`)."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from tests.api.conftest import (
    REGION,
    accounts,  # noqa: F401  (the per-role console users)
)

CHROMIUM = os.environ.get("GEODISPATCH_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


@pytest.fixture(scope="package")
def chromium() -> Iterator[Any]:
    """One headless Chromium for the web tests (ended with them: while it runs, its event loop
    owns the thread and a later test could not call asyncio.run)."""
    if not shutil.which(CHROMIUM) and not os.path.exists(CHROMIUM):
        pytest.fail(f"Chromium not found at {CHROMIUM}: apt-get install chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture()
def page(chromium: Any) -> Iterator[Any]:
    context = chromium.new_context(viewport={"width": 1400, "height": 860}, locale="en-GB")
    pg = context.new_page()
    pg.set_default_timeout(15_000)
    yield pg
    context.close()


@contextmanager
def local_only_page(chromium: Any, *, width: int = 1400, height: int = 860,
                    locale: str | None = "en-GB") -> Iterator[tuple[Any, list[str]]]:
    """A page that may reach 127.0.0.1 only: every other request is refused and its URL
    recorded in the list yielded with the page (a CDN the page still asks for shows up).
    ``locale`` None keeps the browser's own."""
    context = chromium.new_context(viewport={"width": width, "height": height}, locale=locale)
    outside: list[str] = []

    def guard(route: Any) -> None:
        if urlsplit(route.request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    context.route("**/*", guard)
    pg = context.new_page()
    pg.set_default_timeout(20_000)
    try:
        yield pg, outside
    finally:
        context.close()


@contextmanager
def crew_units(engine: Engine, admin_engine: Engine, n: int, prefix: str
               ) -> Iterator[list[dict[str, Any]]]:
    """``n`` available crews in our region (id, call sign, device id, token), deleted after."""
    from geodispatch.tracking.service import create_unit

    tag = uuid.uuid4().hex[:4].upper()
    out = []
    with Session(engine) as s, s.begin():
        for k in range(n):
            unit, token = create_unit(session=s, call_sign=f"{prefix}{tag}{k}", kind="patrol_car",
                                      capabilities=["patrol"], region=REGION, status="available")
            out.append({"id": unit.id, "call_sign": unit.call_sign, "device": unit.device_id,
                        "token": token})
    yield out
    ids = [c["id"] for c in out]
    with admin_engine.begin() as conn:
        conn.execute(text("DELETE FROM crew_report_keys WHERE unit_id = ANY(:ids)"), {"ids": ids})
        conn.execute(text("DELETE FROM assignments WHERE unit_id = ANY(:ids)"), {"ids": ids})
        for table in ("positions", "unit_latest"):
            conn.execute(text(f"DELETE FROM {table} WHERE unit_id = ANY(:ids)"), {"ids": ids})
        conn.execute(text("DELETE FROM units WHERE id = ANY(:ids)"), {"ids": ids})


@pytest.fixture()
def crews(engine: Engine, admin_engine: Engine) -> Iterator[list[dict[str, Any]]]:
    """Two available crews in our region: id, call sign, device id, token."""
    with crew_units(engine, admin_engine, 2, "C") as out:
        yield out


def register_incident(base: str, headers: dict[str, str], what: str,
                      **extra: Any) -> dict[str, Any]:
    """Register a theft at the dispatcher map's scene over HTTP (``what`` names the test in
    its description); the API's answer."""
    from tests.web.test_dispatcher_map import SCENE

    body = {"lat": SCENE[0], "lng": SCENE[1], "category": "theft",
            "description": f"{what} {uuid.uuid4().hex[:8]}", **extra}
    r = httpx.post(f"{base}/api/incidents", json=body, headers=headers)
    assert r.status_code in (200, 201), r.text
    return dict(r.json())


def cancel_incident(base: str, headers: dict[str, str], incident_id: int) -> None:
    """Tidy-up after a browser test (not its subject): cancel the incident."""
    httpx.post(f"{base}/api/incidents/{incident_id}/cancel", headers=headers,
               json={"reason": "browser test done"})
