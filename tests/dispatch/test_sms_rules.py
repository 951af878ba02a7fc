"""SMS rules: the stages each category notifies (none for domestic violence), one message per
stage per incident, messages for cancellation and merge, and never a "?" for a missing ETA."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from geodispatch.dispatch.workflow import (
    assign,
    cancel_incident,
    close_incident,
    merge_incident,
    reopen_incident,
)
from geodispatch.errors import ConfigurationError, InvalidInput
from geodispatch.incidents.classification import DEFAULT_FILE, SMS_STAGES, _load
from geodispatch.incidents.models import Incident
from geodispatch.notify.templates import TEMPLATES, render
from geodispatch.settings import Settings


def _sms(db: Session, inc: Incident) -> list[tuple[str, str]]:
    return [(r[0], r[1]) for r in db.execute(text(
        "SELECT template, body FROM sms_outbox WHERE incident_id = :i ORDER BY id"),
        {"i": inc.id})]


def test_domestic_violence_sends_nothing(db: Session, crew: Callable[..., int],
                                         incident: Callable[..., Incident],
                                         settings: Settings) -> None:
    """Registration, a crew on the way and closing: no message to a domestic-violence caller."""
    inc = incident(category="domestic_violence")
    assign(session=db, incident_id=inc.id, unit_id=crew(), actor="d1", override_reason="near")
    close_incident(session=db, incident_id=inc.id, actor="d1", disposition="03",
                   settings=settings)
    assert _sms(db, inc) == []


def test_one_message_per_stage(db: Session, crew: Callable[..., int],
                               incident: Callable[..., Incident], settings: Settings) -> None:
    """Two crews: one "crew on the way"; close, reopen, close: one "closed"."""
    inc = incident()
    for _ in range(2):
        assign(session=db, incident_id=inc.id, unit_id=crew(), actor="d1",
               override_reason="joint action")
    close_incident(session=db, incident_id=inc.id, actor="d1", disposition="01",
                   settings=settings)
    reopen_incident(session=db, incident_id=inc.id, actor="d1", reason="caller rang again")
    close_incident(session=db, incident_id=inc.id, actor="d1", disposition="01",
                   settings=settings)
    assert [t for t, _ in _sms(db, inc)] == ["registered", "assigned", "closed"]


def test_no_eta_is_no_question_mark(db: Session, crew: Callable[..., int],
                                    incident: Callable[..., Incident]) -> None:
    """An override to a crew without an ETA: the message names the crew and no ETA."""
    inc = incident()
    assign(session=db, incident_id=inc.id, unit_id=crew(), actor="d1", override_reason="radio")
    [(_, body)] = [m for m in _sms(db, inc) if m[0] == "assigned"]
    assert "?" not in body and "is on the way." in body and "min" not in body


def test_cancel_and_merge_tell_the_caller(db: Session, incident: Callable[..., Incident]
                                          ) -> None:
    """A cancelled call and a merged duplicate each get their message (the master's number)."""
    gone = incident(caller_lang="uk")
    cancel_incident(session=db, incident_id=gone.id, actor="d1", reason="caller rang back")
    assert [t for t, _ in _sms(db, gone)] == ["registered", "cancelled"]
    assert "скасовано" in _sms(db, gone)[-1][1]
    master, dup = incident(), incident()
    merge_incident(session=db, incident_id=dup.id, into_id=master.id, actor="d1",
                   reason="same fight")
    [(_, body)] = [m for m in _sms(db, dup) if m[0] == "merged"]
    assert master.reference in body and dup.reference in body
    assert [t for t, _ in _sms(db, master)] == ["registered"]


def test_every_template_renders_without_placeholders() -> None:
    """Each stage's text in both languages fills every field; a missing field is an error."""
    fields = {"reference": "KV-1", "call_sign": "P-1", "eta_min": 4, "master_reference": "KV-2"}
    for lang in ("uk", "en"):
        for stage in SMS_STAGES:
            body, used = render(stage, lang, **fields)
            assert used == lang and "{" not in body and "?" not in body
        assert set(TEMPLATES[lang]) >= set(SMS_STAGES)
    with pytest.raises(InvalidInput, match="master_reference"):
        render("merged", "en", reference="KV-1")


def test_category_rules_from_the_file(tmp_path: Path) -> None:
    """A category's own ``sms`` list wins over ``[sms] stages``; unknown stages are refused."""
    base = DEFAULT_FILE.read_text(encoding="utf-8")
    path = tmp_path / "c.toml"
    path.write_text(base.replace('[categories.theft]\n', '[categories.theft]\nsms = ["closed"]\n'),
                    encoding="utf-8")
    table = _load(path)
    assert table.notifies("theft", "closed") and not table.notifies("theft", "assigned")
    assert table.notifies("robbery", "assigned")
    assert not table.notifies("domestic_violence", "registered")
    path.write_text(base.replace('[categories.theft]\n', '[categories.theft]\nsms = ["soon"]\n'),
                    encoding="utf-8")
    _load.cache_clear()
    with pytest.raises(ConfigurationError, match="soon"):
        _load(path)
    _load.cache_clear()
