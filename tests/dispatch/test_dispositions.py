"""Closing dispositions: the APCO ANS 1.111.2 list read from the standards folder, local codes
mapped onto it, unknown codes refused with the list, and what federation sends."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from geodispatch.dispatch.workflow import close_incident
from geodispatch.errors import ConfigurationError, InvalidInput
from geodispatch.federation.eido import build_eido
from geodispatch.federation.schema import eido_errors
from geodispatch.incidents.classification import (
    DEFAULT_FILE,
    apco_dispositions,
    load_dispositions,
)
from geodispatch.incidents.models import Incident
from geodispatch.settings import Settings
from tests.helpers import record_findings


def _standard(settings: Settings) -> dict[str, str]:
    with (Path(settings.standards_dir) / "apco_disposition_codes.csv").open(
            encoding="utf-8", newline="") as fh:
        return {r["code"]: r["name"] for r in csv.DictReader(fh)}


def test_apco_list_is_the_standard(settings: Settings) -> None:
    """Every code 01-45 of the standards folder's CSV is accepted, with the standard's name."""
    standard = _standard(settings)
    assert len(standard) == 45
    table = load_dispositions(settings)
    assert table.apco == standard
    for code, name in standard.items():
        d = table.resolve(code)
        assert (d.apco, d.name, d.local) == (code, name, None)
    # the codes the old built-in list had wrong
    assert table.resolve("05").name == "Assignment Completed/Settled By Phone Contact"
    assert table.resolve("11").name == "Field Interview"
    assert table.resolve("23").name == "Fire Control or Extinguishment (NFIRS 10)"


def test_local_codes_map_onto_apco(settings: Settings) -> None:
    """Each local code of the shipped file resolves to its APCO code; lower case works too."""
    table = load_dispositions(settings)
    assert len(table.local) >= 10
    for code, local in table.local.items():
        d = table.resolve(code.lower())
        assert d.local == code and d.apco == local.apco and d.name == table.apco[local.apco]
        assert local.label.get("uk") and local.label.get("en")
    assert table.resolve("DUBL").apco == "22"
    assert "[dispositions]" not in DEFAULT_FILE.read_text(encoding="utf-8")


@pytest.mark.parametrize("code", ["99", "00", "46", "5", "XYZ", ""])
def test_unknown_code_is_refused_with_the_list(settings: Settings, code: str) -> None:
    """An unknown code names the accepted ones (in the message and as ``accepted``)."""
    with pytest.raises(InvalidInput) as err:
        load_dispositions(settings).resolve(code)
    assert "DUBL (= 22)" in str(err.value) and "01-45" in str(err.value)
    accepted = err.value.extra["accepted"]
    assert {a["code"] for a in accepted} >= {"01", "45", "DUBL"}


def test_missing_standards_folder_says_how_to_fix(settings: Settings, tmp_path: Path) -> None:
    """No CSV in the standards folder: a configuration error naming the setting."""
    bad = settings.model_copy(update={"standards_dir": tmp_path})
    with pytest.raises(ConfigurationError, match="GEODISPATCH_STANDARDS_DIR"):
        load_dispositions(bad)


def test_local_code_onto_a_non_apco_code_is_refused(settings: Settings, tmp_path: Path) -> None:
    """A local code mapped to a code outside the standard makes the file unusable, named."""
    toml = DEFAULT_FILE.read_text(encoding="utf-8").replace('apco = "22"', 'apco = "77"')
    path = tmp_path / "classification.toml"
    path.write_text(toml, encoding="utf-8")
    with pytest.raises(ConfigurationError, match="DUBL -> 77"):
        load_dispositions(settings.model_copy(update={"classification_file": path}))
    apco_dispositions.cache_clear()


def test_close_with_local_code(db: Session, incident: Callable[..., Incident],
                               settings: Settings) -> None:
    """The incident keeps the APCO code; the event names the local code and the APCO name."""
    inc = incident()
    close_incident(session=db, incident_id=inc.id, actor="d1", disposition="NAMISCI",
                   settings=settings)
    assert inc.status == "closed" and inc.disposition == "18"
    data = db.execute(text("SELECT data FROM incident_events WHERE incident_id = :i AND "
                           "kind = 'closed'"), {"i": inc.id}).scalar_one()
    assert data["disposition"] == "18" and data["local_disposition"] == "NAMISCI"
    assert data["disposition_name"] == "Assignment Completed/Settled By Contact"
    assert record_findings(db, inc.id) == []


def test_close_with_unknown_code_changes_nothing(db: Session, incident: Callable[..., Incident],
                                                 settings: Settings) -> None:
    """A refused code leaves the incident open and records nothing."""
    inc = incident()
    before = inc.event_count
    with pytest.raises(InvalidInput):
        close_incident(session=db, incident_id=inc.id, actor="d1", disposition="23x",
                       settings=settings)
    assert inc.status != "closed" and inc.event_count == before


def test_federation_sends_the_apco_code(db: Session, incident: Callable[..., Incident],
                                        settings: Settings) -> None:
    """Closed with a local code, the EIDO carries the APCO code and the standard's name."""
    inc = incident()
    close_incident(session=db, incident_id=inc.id, actor="d1", disposition="HYBNA",
                   settings=settings)
    doc = build_eido(
        incident={"reference": inc.reference, "region": inc.region, "status": inc.status,
                  "category": inc.category, "priority": inc.priority,
                  "received_at": inc.received_at.isoformat(),
                  "registered_at": inc.received_at.isoformat(),
                  "closed_at": inc.closed_at.isoformat() if inc.closed_at else None,
                  "lat": 50.45, "lng": 30.52, "address": None, "description": "",
                  "disposition": inc.disposition, "sector_code": None, "district_code": None,
                  "source": "call", "created_by": "ct"},
        events=[], centre="KV", standards_dir=settings.standards_dir)
    [disp] = doc["incidentComponent"]["dispositionComponent"]
    assert disp["dispositionCommonRegistryCode"] == "17"
    assert disp["dispositionDescriptionText"] == _standard(settings)["17"]
    assert eido_errors(doc, standards_dir=settings.standards_dir) == []
