"""Pure decoders, one module per protocol: bytes or query strings -> normalised reports.

No database, no clock except the ``received_at`` passed in, no I/O: each decoder is a function of
its input, tested with the real payloads in ``../shared/data/protocols/``. They raise
:class:`~geodispatch.tracking.reports.Rejected` with a drop reason for anything unusable.

Formats (units are converted here, see ``DOMAIN.md`` "the units trap"):

native JSON, MQTT ``geodispatch/units/{device_id}/position``
    One object or a JSON array of objects (a tracker's buffer after a coverage gap)::

        {"lat": 50.4501, "lon": 30.5234, "t": "2026-11-29T06:00:00Z",
         "speed": 12.5, "heading": 270, "acc": 8, "alt": 160, "batt": 87}

    ``lat``/``lon`` degrees (``lng`` accepted for ``lon``); ``t`` the fix time as ISO-8601 (UTC if
    no offset), epoch seconds or epoch milliseconds; optional ``speed`` m/s, ``heading`` degrees,
    ``acc`` metres, ``alt`` metres, ``batt`` percent. Any other key is kept as an attribute.

native status, MQTT ``geodispatch/units/{device_id}/status``
    ``{"status": "en_route", "t": ...}`` (``t`` optional, default: received) or a bare status word.

OwnTracks, MQTT ``owntracks/{user}/{device}`` and HTTP mode
    ``_type=location``: ``lat``, ``lon``, ``tst`` epoch seconds, ``vel`` km/h, ``cog``, ``acc``,
    ``alt``, ``batt`` percent; ``_type=lwt`` = device offline; every other ``_type`` is ignored.

OsmAnd (Traccar Client), HTTP GET query string or form
    ``id``/``deviceid``, ``lat``+``lon`` or ``location=lat,lon``, ``timestamp`` (epoch s, epoch ms,
    ISO-8601 or ``yyyy-MM-dd HH:mm:ss``; default: received), ``speed`` **knots**, ``bearing``/
    ``heading``, ``altitude``, ``accuracy``, ``hdop``, ``batt``; other keys become attributes.
    Without a fix the message is accepted as a heartbeat (a report with ``position`` None).

OsmAnd JSON (Traccar Client 9, transistorsoft background geolocation), HTTP POST
    ``{"device_id", "location": {"timestamp", "coords": {"latitude", "longitude", "speed" m/s,
    "heading", "accuracy", "altitude"}, "battery": {"level": 0..1}, ...}}``; negative speed or
    heading means unknown; ``location`` may also be a list.

GPX 1.0/1.1 files (recorded tracks), read with ``gpxpy``: every ``trkpt`` with a ``time``.

Modules: :mod:`.common` (parsing and checks every decoder shares), :mod:`.native`,
:mod:`.owntracks`, :mod:`.osmand`, :mod:`.gpx`, and :mod:`.topics` (which MQTT topic takes
which decoder).
"""

from geodispatch.tracking.decoders.common import (
    EPOCH_MS_THRESHOLD,
    KMH_TO_MPS,
    KNOTS_TO_MPS,
    MAX_BATCH_ITEMS,
    make_point,
    parse_json,
    parse_time,
)
from geodispatch.tracking.decoders.gpx import decode_gpx
from geodispatch.tracking.decoders.native import (
    _decode_fast,
    decode_native,
    decode_native_item,
    decode_native_items,
    decode_status,
)
from geodispatch.tracking.decoders.osmand import (
    decode_osmand_json,
    decode_osmand_json_items,
    decode_osmand_query,
    osmand_device,
    osmand_json_device,
)
from geodispatch.tracking.decoders.owntracks import (
    decode_owntracks,
    decode_owntracks_items,
    owntracks_items,
)
from geodispatch.tracking.decoders.topics import decode_mqtt, parse_topic

__all__ = [
    "EPOCH_MS_THRESHOLD", "KMH_TO_MPS", "KNOTS_TO_MPS", "MAX_BATCH_ITEMS", "_decode_fast",
    "decode_gpx", "decode_mqtt", "decode_native", "decode_native_item", "decode_native_items",
    "decode_osmand_json", "decode_osmand_json_items", "decode_osmand_query", "decode_owntracks",
    "decode_owntracks_items", "decode_status", "make_point", "osmand_device",
    "osmand_json_device", "owntracks_items", "parse_json", "parse_time", "parse_topic",
]
