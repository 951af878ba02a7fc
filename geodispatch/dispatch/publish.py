"""After-commit side effects of the workflow: crew terminal messages (MQTT) and fleet statuses.

Both must only happen once the transaction committed, so they are attached to the session's
``after_commit`` event; nothing is sent for a rolled-back request.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from sqlalchemy import event
from sqlalchemy.orm import Session

from geodispatch.dispatch.workflow import take_pending_publishes, take_unit_statuses

if TYPE_CHECKING:  # types only: tracking imports dispatch at run time
    import paho.mqtt.client as paho

    from geodispatch.tracking.fleet import LiveFleet

log = logging.getLogger(__name__)


def publish_after_commit(session: Session, *, mqtt: paho.Client | None,
                         fleet: LiveFleet | None) -> None:
    """Send this unit of work's assignment messages and unit statuses when it commits."""

    def after_commit(sess: Session) -> None:
        pending = take_pending_publishes(sess)
        statuses = take_unit_statuses(sess)
        if fleet is not None:
            for unit_id, status in statuses.items():
                fleet.set_status(unit_id, status)
        if mqtt is None or not pending:
            return
        from geodispatch.tracking.mqtt import publish_assignment

        for p in pending:
            try:
                publish_assignment(mqtt, p.device_id, p.payload)
            except Exception:  # noqa: BLE001 - the assignment is committed; the map shows it
                log.exception("could not publish the assignment to %s", p.device_id)

    event.listen(session, "after_commit", after_commit, once=True)
