"""The national centre's subscriber: one live NENA-STA-024 subscription per regional centre.

For each registered centre with a URL it connects to ``<url>/IncidentData/ent`` (subprotocol
``emergency-ent1.0``, ``Authorization: Signature`` with a credential signed by this centre's log
key), subscribes to ``new`` EIDOs giving the size of that centre's log it last witnessed, and
hands every notification to :func:`geodispatch.federation.national.receive` (one transaction per
``event`` message), answering each with an ``eventResponse``. After any disconnect, error or
expiry it reconnects (back-off up to ``federation_reconnect_max_s``) and resumes from the last
witnessed head: the notifier then resends every incident changed since, and events already
verified are ignored, so nothing is lost and nothing is taken twice.
"""

from __future__ import annotations

import asyncio
import logging
import uuid

import websockets
from sqlalchemy.orm import Session, sessionmaker

from geodispatch.db import app_engine, check_database, session_factory, transaction
from geodispatch.federation.conveyance import SUBPROTOCOL, Signer, credential, message, read_message
from geodispatch.federation.national import Centre, Received, centres, receive, witnessed_head
from geodispatch.ledger.signing import load_private_key
from geodispatch.settings import Settings

log = logging.getLogger(__name__)


def _ws_url(base: str) -> str:
    base = base.rstrip("/")
    if base.startswith("http"):
        base = "ws" + base[4:]
    return base + "/IncidentData/ent"


def _take(factory: sessionmaker[Session], tokens: list[object], settings: Settings
          ) -> list[Received]:
    with transaction(factory) as s:
        return [receive(session=s, document=t, via="live", standards_dir=settings.standards_dir)
                for t in tokens]


def _witnessed(factory: sessionmaker[Session], code: str) -> int:
    with factory() as s:
        head = witnessed_head(session=s, code=code)
    return 0 if head is None else head.tree_size


async def follow(centre: Centre, *, settings: Settings, factory: sessionmaker[Session],
                 signer: Signer) -> None:
    """Follow one centre's feed forever (cancel the task to stop)."""
    assert centre.url
    url = _ws_url(centre.url)
    delay = 0.2
    me = settings.resolved_federation_centre
    while True:
        try:
            witnessed = await asyncio.to_thread(_witnessed, factory, centre.code)
            auth = credential(signer, issuer=me, audience=centre.code)
            async with websockets.connect(
                    url, subprotocols=[SUBPROTOCOL],  # type: ignore[list-item]
                    additional_headers={"Authorization": f"Signature {auth}"},
                    # max_queue=None: every frame is read as it arrives, even while a backlog
                    # of events waits to be verified, so the region's pong is never stuck
                    # behind unread events (with the default 16 frames, a national centre that
                    # fell 20 s behind timed out its own keepalive, reconnected and was sent
                    # every active incident again, falling further behind each time).
                    max_size=None, max_queue=None, open_timeout=5, ping_interval=10) as ws:
                await ws.send(message("subscribe", requestId=uuid.uuid4().hex,
                                      requestType="EIDO", requestSubType="new",
                                      expires=settings.federation_max_expires_s,
                                      geodispatchWitnessedTreeSize=witnessed))
                kind, body = read_message(await asyncio.wait_for(ws.recv(), 10))
                if kind != "subscribeResponse" or body.get("statusCode") != 200:
                    raise ConnectionError(f"subscription refused: {body}")
                log.info("following %s at %s from tree size %d", centre.code, url, witnessed)
                delay = 0.2
                async for raw in ws:
                    kind, body = read_message(raw)
                    if kind == "terminate":
                        await ws.send(message("terminateResponse", statusCode=200,
                                              statusText="OK"))
                        break
                    if kind != "event":
                        continue
                    tokens = list(body.get("notification") or [])
                    results = await asyncio.to_thread(_take, factory, tokens, settings) \
                        if tokens else []
                    refused = [r for r in results if not r.accepted]
                    await ws.send(message(
                        "eventResponse", subscriptionId=body.get("subscriptionId"),
                        transactionId=body.get("transactionId"),
                        statusCode=400 if refused else 200,
                        statusText=f"{refused[0].reason}: {refused[0].detail}"[:500]
                        if refused else "OK"))
                    if any(r.reason == "stale_proof" for r in refused):
                        break  # resubscribe from what was really witnessed
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - any failure: reconnect and resume
            log.warning("feed of %s interrupted: %s; reconnecting in %.1f s", centre.code, exc,
                        delay)
        await asyncio.sleep(delay)
        delay = min(delay * 2, settings.federation_reconnect_max_s)


async def follow_all(settings: Settings, factory: sessionmaker[Session], signer: Signer,
                     only: str | None = None) -> None:
    """Follow every registered centre with a URL (newly registered ones are picked up)."""
    tasks: dict[str, asyncio.Task[None]] = {}
    try:
        while True:
            found = await asyncio.to_thread(lambda: centres_of(factory))
            for c in found:
                if c.url and c.code not in tasks and (only is None or c.code == only):
                    tasks[c.code] = asyncio.create_task(
                        follow(c, settings=settings, factory=factory, signer=signer))
            await asyncio.sleep(1)
    finally:
        for t in tasks.values():
            t.cancel()


def centres_of(factory: sessionmaker[Session]) -> list[Centre]:
    with factory() as s:
        return centres(session=s)


async def run_subscribers(settings: Settings, only: str | None = None) -> None:
    """``geodispatch federation subscribe``: follow the registered centres until stopped."""

    engine = app_engine(settings)
    check_database(engine)
    signer = Signer(load_private_key(settings.resolved_log_signing_key))
    try:
        await follow_all(settings, session_factory(engine), signer, only)
    finally:
        engine.dispose()
