"""Advanced Mobile Location (ETSI TS 103 625): strict parsers for the SMS and HTTPS forms.

Pure functions, no database. Each returns an :class:`AmlReport` or raises :class:`AmlError`
with the reason (what the rejects table keeps).

* **SMS v1** ``A"ML=1;lt=+50.45010;lg=+30.52340;rd=12;top=20260101120000;lc=68;pm=G;
  si=<IMSI>;ei=<IMEI>;mcc=255;mnc=01;ml=<length>``: ``lt``/``lg`` WGS 84 degrees, ``rd`` radius
  in metres (``N`` = none), ``top`` fix time UTC ``YYYYMMDDhhmmss``, ``lc`` confidence in %
  (integer), ``pm`` positioning method ``G`` GNSS, ``W`` Wi-Fi, ``C`` cell, ``N`` none, and
  ``ml`` the length of the whole message, which must equal it. Every field but the header is
  optional; an unknown key, an empty field or a malformed pair is refused (strict, like
  GridGears' parser).
* **SMS v2** ``A"ML=2;en=112;et=<epoch s>;lo=<lat>,<lon>,<radius>;lt=<age s>;lc=..;
  lz=<alt>,<vacc>;ls=G|W|C|U|F;ei=..;nc=..;hc=..;lg=<languages>[;ml=<length>]``: the fix time
  is ``et - lt``.
* **HTTPS** form POST (``v``, ``device_number``, ``location_latitude``, ``location_longitude``,
  ``location_accuracy``, ``location_time`` (epoch ms or ISO-8601), ``location_source``
  gps/wifi/cell/fused/unknown, ``location_confidence``, ``device_imei``, ``device_imsi``, ...).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

HEADER_V1 = 'A"ML=1'
HEADER_V2 = 'A"ML=2'
PM_V1 = {"G": "GNSS", "W": "WIFI_SIGNAL", "C": "CELL", "N": "NO_LOCATION"}
LS_V2 = {"G": "GNSS", "W": "WIFI_SIGNAL", "C": "CELL", "U": "UNKNOWN", "F": "FUSED"}
HTTPS_SOURCES = {"gps": "GNSS", "gnss": "GNSS", "wifi": "WIFI_SIGNAL", "cell": "CELL",
                 "fused": "FUSED", "unknown": "UNKNOWN"}
KEYS_V1 = ("lt", "lg", "rd", "top", "lc", "pm", "si", "ei", "mcc", "mnc", "ml")
KEYS_V2 = ("en", "et", "lo", "lt", "lc", "lz", "ls", "ei", "si", "nc", "hc", "lg", "ml", "ml2")
HTTPS_KEYS = frozenset({
    "v", "thunderbird_version", "emergency_number", "source", "time", "location_latitude",
    "location_longitude", "location_time", "location_accuracy", "location_source",
    "location_confidence", "location_altitude", "location_vertical_accuracy",
    "location_bearing", "location_speed", "location_floor", "device_number", "device_imei",
    "device_imsi", "device_model", "device_languages", "cell_home_mcc", "cell_home_mnc",
    "cell_network_mcc", "cell_network_mnc", "hmac", "message_id"})
_NUMBER = re.compile(r"^[+-]?\d+(\.\d+)?$")
_DIGITS = re.compile(r"^\d+$")
_MAX_LEN = 2000


class AmlError(ValueError):
    """The message was refused; ``str()`` is the reason."""


@dataclass(frozen=True)
class AmlReport:
    """One parsed AML message (coordinate order fixed here: ``latitude``, ``longitude``)."""

    transport: str  # aml-sms-v1, aml-sms-v2, aml-https
    version: int | None
    latitude: float | None
    longitude: float | None
    radius_m: float | None
    time_of_positioning: datetime | None
    level_of_confidence: int | None
    positioning_method: str | None
    imsi: str | None = None
    imei: str | None = None
    mcc: str | None = None
    mnc: str | None = None
    length: int | None = None
    number: str | None = None  # the handset's own number (HTTPS; SMS: the sender)
    emergency_number: str | None = None

    @property
    def has_position(self) -> bool:
        return (self.latitude is not None and self.longitude is not None
                and self.positioning_method != "NO_LOCATION")


def _fields(text: str, header: str | None, strict: bool) -> dict[str, str]:
    parts = text.split(";")
    if header is not None:
        parts = parts[1:]
    out: dict[str, str] = {}
    for part in parts:
        if part == "":
            raise AmlError("empty field (;;)")
        key, eq, value = part.partition("=")
        if not eq or not key or value == "" or "=" in value:
            raise AmlError(f"malformed field {part[:24]!r}")
        if key in out:
            raise AmlError(f"field {key} given twice")
        out[key] = value
    return out


def _float(name: str, v: str, lo: float, hi: float) -> float:
    if not _NUMBER.match(v):
        raise AmlError(f"{name} is not a number: {v[:24]!r}")
    x = float(v)
    if not (lo <= x <= hi):
        raise AmlError(f"{name} {v[:24]} is outside {lo}..{hi}")
    return x


def _int(name: str, v: str, lo: int, hi: int) -> int:
    if not _DIGITS.match(v):
        raise AmlError(f"{name} must be an integer: {v[:24]!r}")
    x = int(v)
    if not (lo <= x <= hi):
        raise AmlError(f"{name} {x} is outside {lo}..{hi}")
    return x


def _ml(fields: Mapping[str, str], text: str, required: bool) -> int | None:
    if "ml" not in fields:
        if required:
            raise AmlError("no ml (message length) field")
        return None
    ml = _int("ml", fields["ml"], 1, _MAX_LEN)
    if ml != len(text):
        raise AmlError(f"ml={ml} but the message is {len(text)} characters long")
    return ml


def parse_sms(text: str, *, strict: bool = True) -> AmlReport:
    """Parse an AML SMS text (v1 or v2); ``strict=False`` also takes a message without header
    (as GridGears' parser does with validation off)."""
    if not isinstance(text, str) or not text:
        raise AmlError("empty message")
    if len(text) > _MAX_LEN:
        raise AmlError(f"message longer than {_MAX_LEN} characters")
    if text.startswith(HEADER_V1 + ";") or text == HEADER_V1:
        return _v1(text, _fields(text, HEADER_V1, strict), 1)
    if text.startswith(HEADER_V2 + ";"):
        return _v2(text, _fields(text, HEADER_V2, strict))
    if text.startswith('A"ML='):
        raise AmlError(f"unknown AML version {text[5:8]!r}")
    if strict:
        raise AmlError('no A"ML= header: not an AML message')
    return _v1(text, _fields(text, None, strict), None)


def _v1(text: str, f: dict[str, str], version: int | None) -> AmlReport:
    unknown = [k for k in f if k not in KEYS_V1]
    if unknown:
        raise AmlError(f"unknown field {unknown[0][:16]!r}")
    length = _ml(f, text, required=False)
    lat = _float("lt", f["lt"], -90, 90) if "lt" in f else None
    lng = _float("lg", f["lg"], -180, 180) if "lg" in f else None
    radius = None
    if "rd" in f and f["rd"] != "N":
        radius = _float("rd", f["rd"], 0, 1e7)
    fix = None
    if "top" in f:
        top = f["top"]
        if not (len(top) == 14 and top.isdigit()):
            raise AmlError(f"top is not YYYYMMDDhhmmss: {top[:24]!r}")
        try:
            fix = datetime.strptime(top, "%Y%m%d%H%M%S").replace(tzinfo=UTC)
        except ValueError:
            raise AmlError(f"top is not a valid time: {top!r}") from None
    conf = _int("lc", f["lc"], 0, 100) if "lc" in f else None
    method = None
    if "pm" in f:
        if f["pm"] not in PM_V1:
            raise AmlError(f"unknown positioning method pm={f['pm'][:8]}")
        method = PM_V1[f["pm"]]
    for k in ("si", "ei", "mcc", "mnc"):
        if k in f and not _DIGITS.match(f[k]):
            raise AmlError(f"{k} must be digits")
    return AmlReport("aml-sms-v1", version, lat, lng, radius, fix, conf, method,
                     imsi=f.get("si"), imei=f.get("ei"), mcc=f.get("mcc"), mnc=f.get("mnc"),
                     length=length)


def _v2(text: str, f: dict[str, str]) -> AmlReport:
    unknown = [k for k in f if k not in KEYS_V2]
    if unknown:
        raise AmlError(f"unknown field {unknown[0][:16]!r}")
    length = _ml(f, text, required=False)
    lat = lng = radius = None
    if "lo" in f:
        parts = f["lo"].split(",")
        if len(parts) not in (2, 3):
            raise AmlError("lo must be lat,lon[,radius]")
        lat = _float("lo latitude", parts[0], -90, 90)
        lng = _float("lo longitude", parts[1], -180, 180)
        if len(parts) == 3:
            radius = _float("lo radius", parts[2], 0, 1e7)
    et = None
    if "et" in f:
        et = _int("et", f["et"], 0, 2**33)
    fix = None
    if "lt" in f:
        age = _int("lt", f["lt"], 0, 10**7)
        if et is None:
            raise AmlError("lt (fix time offset) without et (event time)")
        fix = datetime.fromtimestamp(et - age, UTC)
    elif et is not None:
        fix = datetime.fromtimestamp(et, UTC)
    conf = _int("lc", f["lc"], 0, 100) if "lc" in f else None
    method = None
    if "ls" in f:
        if f["ls"] not in LS_V2:
            raise AmlError(f"unknown positioning method ls={f['ls'][:8]}")
        method = LS_V2[f["ls"]]
    return AmlReport("aml-sms-v2", 2, lat, lng, radius, fix, conf, method,
                     imsi=f.get("si"), imei=f.get("ei"), length=length,
                     emergency_number=f.get("en"))


def _time(name: str, v: str) -> datetime:
    v = v.strip()
    try:
        if _DIGITS.match(v):
            n = int(v)
            return datetime.fromtimestamp(n / 1000 if n > 10**11 else n, UTC)
        t = datetime.fromisoformat(v.replace("Z", "+00:00"))
    except (ValueError, OverflowError, OSError):
        raise AmlError(f"{name} is not a time: {v[:32]!r}") from None
    if t.tzinfo is None:
        raise AmlError(f"{name} has no time zone: {v[:32]!r}")
    return t.astimezone(UTC)


def parse_https(form: Mapping[str, str]) -> AmlReport:
    """Parse the HTTPS form POST of AML (the fields as strings)."""
    unknown = sorted(k for k in form if k not in HTTPS_KEYS)
    if unknown:
        raise AmlError(f"unknown field {unknown[0][:32]!r}")
    for k in ("v", "device_number", "location_latitude", "location_longitude",
              "location_time"):
        if not str(form.get(k) or "").strip():
            raise AmlError(f"missing {k}")
    lat = _float("location_latitude", str(form["location_latitude"]).strip(), -90, 90)
    lng = _float("location_longitude", str(form["location_longitude"]).strip(), -180, 180)
    radius = None
    if str(form.get("location_accuracy") or "").strip():
        radius = _float("location_accuracy", str(form["location_accuracy"]).strip(), 0, 1e7)
    fix = _time("location_time", str(form["location_time"]))
    if str(form.get("time") or "").strip():
        _time("time", str(form["time"]))
    method = None
    src = str(form.get("location_source") or "").strip().lower()
    if src:
        if src not in HTTPS_SOURCES:
            raise AmlError(f"unknown positioning method location_source={src[:16]}")
        method = HTTPS_SOURCES[src]
    conf = None
    if str(form.get("location_confidence") or "").strip():
        c = str(form["location_confidence"]).strip()
        x = _float("location_confidence", c, 0, 100)
        conf = int(round(x * 100)) if x <= 1 and "." in c else int(round(x))
    if not all(math.isfinite(x) for x in (lat, lng)):
        raise AmlError("coordinates are not finite")
    return AmlReport("aml-https", None, lat, lng, radius, fix, conf, method,
                     imsi=form.get("device_imsi") or None, imei=form.get("device_imei") or None,
                     mcc=form.get("cell_home_mcc") or None, mnc=form.get("cell_home_mnc") or None,
                     number=str(form["device_number"]).strip()[:64],
                     emergency_number=form.get("emergency_number") or None)
