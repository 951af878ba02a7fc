"""GPX 1.0/1.1 files (recorded tracks), read with ``gpxpy``: every track point with a time."""

from __future__ import annotations

from datetime import UTC, datetime

import gpxpy
import gpxpy.gpx

from geodispatch.tracking.decoders.common import make_point
from geodispatch.tracking.reports import BAD_VALUE, PositionReport, Rejected


def decode_gpx(data: bytes | str, *, device: str, received_at: datetime) -> list[PositionReport]:
    """Every timed track point of a GPX 1.0/1.1 file, in file order (untimed points skipped)."""
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    try:
        gpx = gpxpy.parse(text)
    except (gpxpy.gpx.GPXException, ValueError) as exc:
        raise Rejected(BAD_VALUE, f"not GPX: {str(exc)[:120]}") from None
    out: list[PositionReport] = []
    for track in gpx.tracks:
        for segment in track.segments:
            for p in segment.points:
                if p.time is None:
                    continue
                at = p.time.replace(tzinfo=UTC) if p.time.tzinfo is None \
                    else p.time.astimezone(UTC)
                speed = p.speed if p.speed is not None and p.speed >= 0 else None
                course = p.course if p.course is not None and p.course >= 0 else None
                out.append(PositionReport(
                    device=device, fix_time=at, position=make_point(p.latitude, p.longitude),
                    source="gpx", received_at=received_at, speed_mps=speed, heading=course,
                    altitude_m=p.elevation))
    return out
