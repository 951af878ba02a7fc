"""AML parsers: every vector of the shared file gets the verdict it expects; HTTPS form; v2."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from geodispatch.calls.aml import AmlError, parse_https, parse_sms
from geodispatch.settings import get_settings


def _vectors() -> list[dict[str, Any]]:
    path = Path(get_settings().data_dir) / "aml" / "aml_vectors.json"
    return [v for v in json.loads(path.read_text())["vectors"] if v["transport"] == "sms-text"]


FIELDS = {"latitude": "latitude", "longitude": "longitude", "radius_m": "radius_m",
          "level_of_confidence": "level_of_confidence", "version": "version",
          "positioning_method": "positioning_method", "imsi": "imsi", "imei": "imei",
          "mcc": "mcc", "mnc": "mnc", "length": "length"}


def test_the_shared_file_has_vectors() -> None:
    """The vectors are read from the shared data folder (not copied here)."""
    assert len(_vectors()) >= 14


@pytest.mark.parametrize("vector", _vectors(), ids=lambda v: v.get("test", "?"))
def test_every_vector_gets_its_verdict(vector: dict[str, Any]) -> None:
    """Valid vectors parse to the expected fields; invalid ones are refused with a reason."""
    exp = vector["expected"]
    payload = vector["payload"]
    if exp["valid"] is True:
        r = parse_sms(payload)
        for key, attr in FIELDS.items():
            if key in exp:
                assert getattr(r, attr) == exp[key], key
        if "time_of_positioning_utc" in exp:
            assert r.time_of_positioning is not None
            assert r.time_of_positioning.strftime("%Y-%m-%dT%H:%M:%SZ") \
                == exp["time_of_positioning_utc"]
        if "time_of_positioning" in exp:
            assert r.time_of_positioning == exp["time_of_positioning"]
    elif exp["valid"] is False:
        with pytest.raises(AmlError) as err:
            parse_sms(payload)
        assert str(err.value)
    else:  # "parses only with validation disabled"
        with pytest.raises(AmlError):
            parse_sms(payload)
        assert parse_sms(payload, strict=False).version is None


def test_v2_form() -> None:
    """v2: lo gives lat, lon, radius; the fix time is et - lt; ls is the method."""
    text = 'A"ML=2;en=112;et=1764583200;lo=50.45010,30.52340,12;lt=5;lc=68;ls=G;ei=1234'
    r = parse_sms(text)
    assert (r.latitude, r.longitude, r.radius_m) == (50.4501, 30.5234, 12.0)
    assert r.time_of_positioning is not None
    assert r.time_of_positioning.timestamp() == 1764583195
    assert r.positioning_method == "GNSS" and r.emergency_number == "112"
    with pytest.raises(AmlError, match="positioning method"):
        parse_sms(text.replace("ls=G", "ls=Q"))
    with pytest.raises(AmlError, match="ml="):
        parse_sms(text + ";ml=5")


def test_https_form() -> None:
    """The HTTPS form POST: fields, epoch-ms times, unknown source and bad time refused."""
    form = {"v": "1", "emergency_number": "112", "device_number": "+380671112233",
            "location_latitude": "50.4501", "location_longitude": "30.5234",
            "location_accuracy": "15.5", "location_time": "1764583200000",
            "location_source": "gps", "location_confidence": "0.68"}
    r = parse_https(form)
    assert (r.latitude, r.longitude, r.radius_m, r.positioning_method, r.level_of_confidence) \
        == (50.4501, 30.5234, 15.5, "GNSS", 68)
    assert r.number == "+380671112233"
    with pytest.raises(AmlError, match="positioning method"):
        parse_https({**form, "location_source": "magic"})
    with pytest.raises(AmlError, match="not a time"):
        parse_https({**form, "location_time": "yesterday"})
    with pytest.raises(AmlError, match="unknown field"):
        parse_https({**form, "surprise": "1"})
