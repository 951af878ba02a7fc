"""Three real centres on one machine: regional KV and LV, and the national centre.

Each has its own database, signing key and API port (``geodispatch serve`` and ``geodispatch
log sequence`` as subprocesses). The national centre registers both with ``geodispatch
federation centre add`` and follows their live NENA-STA-024 feeds. Incidents are registered
through each region's HTTP API.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from sqlalchemy import text

from geodispatch.federation.conveyance import SUBPROTOCOL, Signer, credential, message, read_message
from geodispatch.federation.eido import LOG_EXTENSION
from geodispatch.federation.schema import eido_errors
from geodispatch.ledger.signing import generate_keypair, load_private_key
from geodispatch.settings import Settings
from tests.federation.harness import (
    Centre,
    create_centre,
    drop_centre,
    register_centre_at,
    register_incident,
    wait_for,
)

pytestmark = pytest.mark.slow


@dataclass
class World:
    kv: Centre
    lv: Centre
    nat: Centre
    probe: Signer  # a key KV accepts as a subscriber (the test plays a second national centre)
    http: httpx.Client
    headers: dict[str, dict[str, str]]


@pytest.fixture(scope="module")
def world(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("centres")
    generate_keypair(root / "probe.pem", root / "probe-public.pem")
    nat = create_centre(settings, "NAT", root, subscribe=True)
    keys = [nat.public_key, root / "probe-public.pem"]
    kv = create_centre(settings, "KV", root, subscriber_keys=keys)
    lv = create_centre(settings, "LV", root, subscriber_keys=keys)
    centres = (kv, lv, nat)
    try:
        for c in centres:
            c.start()
        register_centre_at(nat, kv)
        register_centre_at(nat, lv)
        with httpx.Client(timeout=30) as http:
            w = World(kv, lv, nat, Signer(load_private_key(root / "probe.pem")), http,
                      {c.code: c.token() for c in (kv, lv)})
            for c in (kv, lv):  # the national subscriber is following both feeds
                ref = register_incident(http, c, w.headers[c.code], -1)
                assert wait_for(lambda c=c, r=ref: _at_national(w, c.code, r), 30, 0.1)
            yield w
    except BaseException:
        for c in centres:
            print(c.log_tail())
        raise
    finally:
        for c in centres:
            drop_centre(settings, c)


def _at_national(w: World, code: str, ref: str) -> bool:
    return bool(w.nat.scalar("SELECT count(*) FROM incidents WHERE source = 'eido' AND "
                             "external_ref = :x", x=f"{code}:{ref}"))


def test_incident_visible_at_national_within_1s(world: World) -> None:
    """A KV registration reaches the national centre, verified, in under a second."""
    w = world
    delays = []
    for n in range(5):
        t0 = time.monotonic()
        ref = register_incident(w.http, w.kv, w.headers["KV"], n)
        assert wait_for(lambda r=ref: _at_national(w, "KV", r), 5), w.nat.log_tail()
        delays.append(time.monotonic() - t0)
    assert max(delays) < 1.0, delays
    row = w.nat.engine.connect().execute(text(
        "SELECT region, category, status, description FROM incidents WHERE external_ref = :x"),
        {"x": f"KV:{ref}"}).one()
    regional = w.kv.engine.connect().execute(text(
        "SELECT region, category, status, description FROM incidents WHERE reference = :r"),
        {"r": ref}).one()
    assert tuple(row) == tuple(regional) and row.description == "bike stolen #4"


def _counts(w: World, c: Centre) -> tuple[int, int, int, int]:
    regional_events = c.scalar("SELECT count(*) FROM incident_events")
    national_verified = w.nat.scalar("SELECT count(*) FROM federation_events WHERE "
                                     "centre_code = :c", c=c.code)
    national_appended = w.nat.scalar(
        "SELECT count(*) FROM incident_events WHERE data->'_origin'->>'centre' = :c", c=c.code)
    national_incidents = w.nat.scalar("SELECT count(*) FROM incidents WHERE source = 'eido' "
                                      "AND external_ref LIKE :p", p=f"{c.code}:%")
    return regional_events, national_verified, national_appended, national_incidents


def test_national_down_then_everything_once(world: World) -> None:
    """National stopped; 100 incidents per region; restarted: each arrives exactly once."""
    w = world
    w.nat.stop()
    refs: dict[str, list[str]] = {"KV": [], "LV": []}
    for n in range(100):
        for c in (w.kv, w.lv):
            refs[c.code].append(register_incident(w.http, c, w.headers[c.code], 1000 + n))
    w.nat.start()
    for c in (w.kv, w.lv):
        regional_incidents = c.scalar("SELECT count(*) FROM incidents")

        def done(c: Centre = c, total: int = regional_incidents) -> bool:
            ev, verified, _, incidents = _counts(w, c)
            return incidents == total and verified == ev

        assert wait_for(done, 60, 0.2), (_counts(w, c), w.nat.log_tail())
        ev, verified, appended, incidents = _counts(w, c)
        assert ev == verified == appended and incidents == regional_incidents
        for ref in refs[c.code]:
            assert _at_national(w, c.code, ref)
        dups = w.nat.scalar("SELECT count(*) FROM (SELECT external_ref FROM incidents "
                            "WHERE source = 'eido' GROUP BY 1 HAVING count(*) > 1) d")
        assert dups == 0


async def _capture(w: World, witnessed: int) -> list[str]:
    """Subscribe to KV as a second subscriber and take its first notifications."""
    auth = credential(w.probe, issuer="PROBE", audience="KV")
    url = w.kv.base.replace("http", "ws", 1) + "/IncidentData/ent"
    async with websockets.connect(url, subprotocols=[SUBPROTOCOL],  # type: ignore[list-item]
                                  additional_headers={"Authorization": f"Signature {auth}"},
                                  max_size=None) as ws:
        assert ws.subprotocol == SUBPROTOCOL
        await ws.send(message("subscribe", requestId="r1", requestType="EIDO",
                              requestSubType="new", expires=60,
                              geodispatchWitnessedTreeSize=witnessed))
        kind, body = read_message(await asyncio.wait_for(ws.recv(), 10))
        assert kind == "subscribeResponse" and body["statusCode"] == 200
        assert body["requestId"] == "r1" and body["expires"] == 60
        kind, event = read_message(await asyncio.wait_for(ws.recv(), 10))
        assert kind == "event" and event["subscriptionId"] == body["subscriptionId"]
        await ws.send(message("eventResponse", subscriptionId=event["subscriptionId"],
                              transactionId=event["transactionId"], statusCode=200))
        await ws.send(message("unsubscribe", subscriptionId=body["subscriptionId"]))
        out = list(event["notification"])
        while True:  # a large first batch comes in several events
            kind, resp = read_message(await asyncio.wait_for(ws.recv(), 10))
            if kind == "event":
                out.extend(resp["notification"])
                continue
            assert kind == "unsubscribeResponse" and resp["statusCode"] == 200
            return out


def _payload(token: str) -> dict[str, Any]:
    seg = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(seg + "=" * (-len(seg) % 4)))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _push(w: World, notification: Any) -> dict[str, Any]:
    r = w.http.post(f"{w.nat.base}/api/federation/notifications", json={"event": {
        "subscriptionId": "push", "transactionId": uuid.uuid4().hex,
        "notification": [notification]}})
    assert r.status_code == 200, r.text
    return dict(r.json()["eventResponse"]["results"][0])


def test_bad_notifications_refused_with_reason(world: World, tmp_path: Path) -> None:
    """Tampered, unsigned, wrongly signed, unknown-key and replayed notifications are refused,
    each kept with its reason; every conveyed document validates against the schema."""
    w = world
    w.kv.scalar("SELECT 1")
    witnessed = w.nat.scalar("SELECT max(tree_size) FROM federation_heads WHERE "
                             "centre_code = 'KV'")
    assert wait_for(lambda: w.kv.scalar("SELECT max(tree_size) FROM tree_heads") == witnessed, 10)
    tokens = asyncio.run(_capture(w, int(witnessed)))
    assert tokens
    settings = Settings()
    for t in tokens:
        doc = _payload(t)
        assert eido_errors({k: v for k, v in doc.items() if k != LOG_EXTENSION},
                           standards_dir=settings.standards_dir) == []
    good = tokens[0]
    first = _push(w, good)
    assert first["accepted"] and first["events_new"] == 0, first  # known events: ignored

    header, payload, sig = good.split(".")
    doc = _payload(good)
    doc["incidentComponent"]["incidentTypeInternalCode"] = "murder"
    tampered = ".".join([header, _b64(json.dumps(doc).encode()), sig])
    generate_keypair(tmp_path / "k.pem", tmp_path / "k.pub")
    other = Signer(load_private_key(tmp_path / "k.pem"))
    wrong_kid = json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))["kid"]
    resigned = other.sign(_payload(good))
    h2, p2, s2 = resigned.split(".")
    hdr = {"alg": "Ed25519", "kid": wrong_kid, "typ": "eido+jws"}
    forged_hdr = _b64(json.dumps(hdr).encode())
    from joserfc import jws
    from joserfc.jwk import OKPKey

    key = OKPKey.import_key((tmp_path / "k.pem").read_bytes())
    wrongly_signed = jws.serialize_compact(hdr, base64.urlsafe_b64decode(p2 + "=" * (
        -len(p2) % 4)), key, algorithms=["Ed25519"])
    assert forged_hdr  # the header names KV's key; the signature is another key's
    cases = {
        "tampered": (tampered, "bad_signature"),
        "unsigned": (_payload(good), "unsigned"),
        "wrongly_signed": (wrongly_signed, "bad_signature"),
        "unknown_key": (resigned, "unknown_key"),
        "replayed": (good, "replayed"),
    }
    before = w.nat.scalar("SELECT count(*) FROM federation_refusals")
    for name, (notification, reason) in cases.items():
        r = _push(w, notification)
        assert not r["accepted"] and r["reason"] == reason, (name, r)
    kept = w.nat.engine.connect().execute(text(
        # (the last n rows by id: ids need not be consecutive, a rolled-back insert uses one)
        "SELECT reason, detail, document FROM (SELECT * FROM federation_refusals "
        "ORDER BY id DESC LIMIT :n) AS last ORDER BY id"),
        {"n": len(cases)}).all()
    assert w.nat.scalar("SELECT count(*) FROM federation_refusals") == before + len(cases)
    assert [k.reason for k in kept] == [reason for _, reason in cases.values()]
    assert all(k.detail and k.document for k in kept)
    assert w.nat.scalar("SELECT count(*) FROM federation_refusals WHERE reason = 'schema'") == 0


def test_rewritten_regional_log_detected(world: World) -> None:
    """KV's log truncated and re-forged (superuser, tree-head file deleted, sequencer
    restarted): the national witness refuses KV's next notifications as inconsistent."""
    w = world
    size = w.kv.scalar("SELECT max(tree_size) FROM tree_heads")
    assert wait_for(lambda: w.nat.scalar("SELECT max(tree_size) FROM federation_heads WHERE "
                                         "centre_code = 'KV'") == size, 10)
    w.kv.stop()
    cut = size - 5
    from sqlalchemy import create_engine

    eng = create_engine(w.kv.admin_url)
    with eng.begin() as conn:
        conn.execute(text("SET LOCAL session_replication_role = replica"))
        ids = conn.execute(text("SELECT event_id FROM log_leaves WHERE seq >= :k"),
                           {"k": cut}).scalars().all()
        conn.execute(text("DELETE FROM log_leaves WHERE seq >= :k"), {"k": cut})
        conn.execute(text("DELETE FROM tree_heads WHERE tree_size > :k"), {"k": cut})
        conn.execute(text("DELETE FROM log_pending WHERE event_id = ANY(:i)"), {"i": ids})
        conn.execute(text("DELETE FROM incident_events WHERE id = ANY(:i)"), {"i": ids})
    eng.dispose()
    for f in (w.kv.var / "log").glob("tree-heads-*.jsonl"):
        f.unlink()
    before = w.nat.scalar("SELECT count(*) FROM federation_refusals WHERE centre_code = 'KV' "
                          "AND reason = 'inconsistent'")
    w.kv.start()
    for n in range(10):
        register_incident(w.http, w.kv, w.headers["KV"], 5000 + n)
    assert wait_for(lambda: w.nat.scalar(
        "SELECT count(*) FROM federation_refusals WHERE centre_code = 'KV' AND "
        "reason = 'inconsistent'") > before, 20, 0.2), w.nat.log_tail()
    detail = w.nat.scalar("SELECT detail FROM federation_refusals WHERE reason = 'inconsistent' "
                          "ORDER BY id DESC LIMIT 1")
    assert "rewritten" in detail or "cut off" in detail
    assert w.nat.scalar("SELECT max(tree_size) FROM federation_heads WHERE "
                        "centre_code = 'KV'") == size  # nothing of the forgery was witnessed
