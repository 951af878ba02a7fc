"""Fixtures of the analytics tests: the real SF calls file, imported in the rolled-back session."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from geodispatch.analytics.importer import ImportResult, import_sf_calls
from geodispatch.analytics.intervals import refresh_intervals

SF_REGION = "SFTEST"
SF_TZ = "America/Los_Angeles"


@pytest.fixture(scope="session")
def sf_calls_file(data_dir: Path) -> Path:
    return data_dir / "incidents" / "sf_fire_calls_for_service_2016-12-31_to_2017-01-07.csv"


@pytest.fixture()
def sf_imported(db: Session, sf_calls_file: Path) -> ImportResult:
    """The SF file imported (region SFTEST) and its intervals refreshed, inside ``db``."""
    result = import_sf_calls(session=db, path=sf_calls_file, region=SF_REGION, tz=SF_TZ)
    assert result.first_received is not None
    refresh_intervals(session=db, since=result.first_received.to_pydatetime(), tz=SF_TZ)
    return result
