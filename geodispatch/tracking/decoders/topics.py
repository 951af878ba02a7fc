"""MQTT topics the ingest worker subscribes to, and the decoder each one takes."""

from __future__ import annotations

from datetime import datetime

from geodispatch.tracking.decoders.native import decode_ack, decode_native_items, decode_status
from geodispatch.tracking.decoders.owntracks import decode_owntracks_items
from geodispatch.tracking.reports import (
    BAD_TOPIC,
    OfflineReport,
    PositionReport,
    Rejected,
    StatusReport,
)


def parse_topic(topic: str) -> tuple[str, str]:
    """``(kind, device)`` of an MQTT topic: kind is ``position``, ``status``, ``ack`` or
    ``owntracks``."""
    parts = topic.split("/")
    if (len(parts) == 5 and parts[0] == "geodispatch" and parts[1] == "units" and parts[2]
            and parts[3] == "assignment" and parts[4] == "ack"):
        return "ack", parts[2]
    if (len(parts) == 4 and parts[0] == "geodispatch" and parts[1] == "units" and parts[2]
            and parts[3] in ("position", "status")):
        return parts[3], parts[2]
    if len(parts) == 3 and parts[0] == "owntracks" and parts[1] and parts[2]:
        return "owntracks", f"{parts[1]}/{parts[2]}"
    raise Rejected(BAD_TOPIC, f"unexpected topic {topic[:80]!r}")


def decode_mqtt(
    topic: str, payload: bytes, *, received_at: datetime
) -> list[PositionReport | StatusReport | OfflineReport | Rejected]:
    """Any message the ingest worker subscribes to -> reports (bad array items as ``Rejected``)."""
    kind, device = parse_topic(topic)
    if kind == "position":
        return list(decode_native_items(payload, device=device, received_at=received_at))
    if kind == "status":
        return [decode_status(payload, device=device, received_at=received_at)]
    if kind == "ack":
        return [decode_ack(payload, device=device, received_at=received_at)]
    return decode_owntracks_items(payload, device=device, received_at=received_at)
