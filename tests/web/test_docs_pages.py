"""/docs and /redoc render offline: their scripts come from our vendored copies, not a CDN."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from geodispatch.api.app import create_app
from geodispatch.settings import Settings
from tests.helpers import running_server
from tests.web.conftest import local_only_page

pytestmark = pytest.mark.browser


@pytest.fixture()
def offline_page(chromium: Any) -> Iterator[tuple[Any, list[str]]]:
    """A page whose requests to anywhere but 127.0.0.1 are refused and recorded."""
    with local_only_page(chromium) as page_and_outside:
        yield page_and_outside


@pytest.fixture(scope="module")
def base(settings: Settings) -> Iterator[str]:
    app = create_app(settings.model_copy(update={"serve_ingest": False, "tile_url": ""}))
    with running_server(app) as url:
        yield url


def test_swagger_ui_lists_the_operations_offline(
    offline_page: tuple[Any, list[str]], base: str
) -> None:
    """/docs draws the operations list (the token endpoint among them) with no outside request."""
    page, outside = offline_page
    page.goto(base + "/docs")
    page.wait_for_selector(".opblock-summary-path[data-path='/api/auth/token']")
    assert page.locator(".opblock").count() > 20
    assert "/static/vendor/swagger-ui/swagger-ui-bundle.js" in page.content()
    assert outside == []


def test_redoc_renders_offline(offline_page: tuple[Any, list[str]], base: str) -> None:
    """/redoc draws the API title and the operations menu with no outside request."""
    page, outside = offline_page
    page.goto(base + "/redoc")
    page.wait_for_selector("h1:has-text('geodispatch')")
    page.wait_for_selector("li[role=menuitem][aria-label='Map configuration']", state="attached")
    assert page.locator("li[role=menuitem][data-item-id*='/operation/']").count() > 20
    assert outside == []


def test_oauth2_redirect_page_is_local(base: str) -> None:
    """The Swagger UI OAuth2 redirect page is served (it names no outside script)."""
    r = httpx.get(base + "/docs/oauth2-redirect")
    assert r.status_code == 200 and "oauth2" in r.text.lower()
    assert "cdn." not in r.text
