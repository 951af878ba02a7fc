"""PIDF-LO (RFC 4119, profile RFC 5491): the caller's location a SIP INVITE carries.

Pure functions, no database. The INVITE's ``Geolocation`` header points (``<cid:...>``) at a
body part of a ``multipart/mixed`` body (or the whole body) that is a ``presence`` document;
its ``geopriv/location-info`` holds a ``gml:Point`` (``gml:pos`` "lat lon") or a ``gs:Circle``
(``gml:pos`` + ``gs:radius`` in metres), with ``method`` and the tuple's ``timestamp``.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import UTC, datetime

GML = "{http://www.opengis.net/gml}"
GS = "{http://www.opengis.net/pidflo/1.0}"
GP = "{urn:ietf:params:xml:ns:pidf:geopriv10}"
PIDF = "{urn:ietf:params:xml:ns:pidf}"
_PRESENCE = re.compile(r"<(?:[A-Za-z0-9_]+:)?presence[\s>].*?</(?:[A-Za-z0-9_]+:)?presence>",
                       re.S)
_MAX = 64 * 1024


class PidfError(ValueError):
    """The body carries no usable PIDF-LO location; ``str()`` says why."""


@dataclass(frozen=True)
class PidfLocation:
    latitude: float
    longitude: float
    radius_m: float | None
    method: str | None
    timestamp: datetime | None
    entity: str | None


def find_presence(body: str) -> str:
    """The ``presence`` document inside a SIP body (multipart or not)."""
    if len(body) > _MAX:
        raise PidfError("body too large")
    m = _PRESENCE.search(body)
    if m is None:
        raise PidfError("no PIDF-LO presence document in the body")
    return m.group(0)


def parse_pidf(body: str) -> PidfLocation:
    """The first point or circle of a PIDF-LO document (or a SIP body holding one)."""
    doc = find_presence(body)
    if "<!DOCTYPE" in doc or "<!ENTITY" in doc:
        raise PidfError("document type declarations are refused")
    try:
        root = ET.fromstring(doc)
    except ET.ParseError as exc:
        raise PidfError(f"not well-formed XML: {exc}") from None
    if root.tag != PIDF + "presence":
        raise PidfError("the root is not a PIDF presence element")
    pos_el = None
    radius = None
    for circle in root.iter(GS + "Circle"):
        pos_el = circle.find(GML + "pos")
        r = circle.find(GS + "radius")
        if r is not None and (r.text or "").strip():
            try:
                radius = float((r.text or "").strip())
            except ValueError:
                raise PidfError("gs:radius is not a number") from None
        break
    if pos_el is None:
        for point in root.iter(GML + "Point"):
            pos_el = point.find(GML + "pos")
            break
    if pos_el is None or not (pos_el.text or "").strip():
        raise PidfError("no gml:Point or gs:Circle with a gml:pos")
    parts = (pos_el.text or "").split()
    try:
        lat, lng = float(parts[0]), float(parts[1])
    except (IndexError, ValueError):
        raise PidfError("gml:pos is not 'latitude longitude'") from None
    if not (-90 <= lat <= 90 and -180 <= lng <= 180):
        raise PidfError("gml:pos is outside the WGS 84 range")
    method_el = next(root.iter(GP + "method"), None)
    ts_el = next(root.iter(PIDF + "timestamp"), None)
    ts = None
    if ts_el is not None and (ts_el.text or "").strip():
        try:
            ts = datetime.fromisoformat((ts_el.text or "").strip().replace("Z", "+00:00"))
            ts = ts.astimezone(UTC) if ts.tzinfo else None
        except ValueError:
            raise PidfError("timestamp is not ISO-8601") from None
    method = (method_el.text or "").strip()[:32] if method_el is not None else None
    return PidfLocation(lat, lng, radius, method or None, ts, root.get("entity"))
