"""The regional centre's EIDO notifier: NENA-STA-024 subscribe/notify over a WebSocket.

``/IncidentData/ent`` (subprotocol ``emergency-ent1.0``). A subscriber authenticates on the
upgrade with ``Authorization: Signature <JWS>``, a short-lived credential signed by a key listed
in ``federation_subscriber_keys``. Messages (each ``{"<kind>": {...}}``):

- ``subscribe`` {requestId, requestType "EIDO", requestSubType "new" | "single", incidentId
  (single), expires (s), minRate / maxRate (notifications per second), and the extension
  ``geodispatchWitnessedTreeSize``: the size of this centre's log the subscriber last witnessed}
  -> ``subscribeResponse`` {requestId, subscriptionId, expires, statusCode, statusText};
- ``event`` {subscriptionId, transactionId, notification: [JWS, ...]} -> ``eventResponse``
  {subscriptionId, transactionId, statusCode, statusText};
- ``unsubscribe`` {subscriptionId} -> ``unsubscribeResponse``; ``terminate`` from the notifier
  when a subscription expires (-> ``terminateResponse``), or from the subscriber to end all.

"new" sends every active incident, plus every incident with an event sealed since
``geodispatchWitnessedTreeSize`` (so a subscriber that was away misses nothing), then each
incident again whenever a newer signed tree head seals one of its events. "single" does the same
for one incident. Every notification is a JWS of the EIDO with its signed-log proof, the
consistency proof from the subscriber's last witnessed head, and a fresh notification id.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy.orm import Session, sessionmaker
from starlette.websockets import WebSocket, WebSocketDisconnect

from geodispatch.federation.conveyance import (
    SUBPROTOCOL,
    Refused,
    Signer,
    check_credential,
    message,
    read_message,
)
from geodispatch.federation.publish import (
    LogTree,
    active_incidents,
    changed_incidents,
    current_head,
    find_incident,
    sealed_documents,
)
from geodispatch.ledger.signing import TreeHead
from geodispatch.settings import Settings

log = logging.getLogger(__name__)

#: Most notifications in one ``event`` message (a large first batch goes in several).
BATCH = 100


@dataclass
class Subscription:
    sid: str
    sub_type: str
    incident_id: int | None
    witnessed: int
    expires_s: int
    min_rate: float | None
    max_rate: float | None
    sent_size: int | None = None
    unanswered: dict[str, float] = field(default_factory=dict)


class Notifier:
    """Builds and signs the documents for every subscription of this centre."""

    def __init__(self, factory: sessionmaker[Session], settings: Settings, signer: Signer,
                 subscriber_keys: Sequence[Ed25519PublicKey]) -> None:
        self.factory = factory
        self.settings = settings
        self.signer = signer
        self.subscriber_keys = list(subscriber_keys)
        self.mirror = LogTree()

    # --- database work (run in threads) ----------------------------------------------------

    def head(self) -> TreeHead | None:
        with self.factory() as s:
            return current_head(s)

    def find(self, key: str) -> int | None:
        with self.factory() as s:
            return find_incident(session=s, key=key,
                                 centre=self.settings.resolved_federation_centre)

    def signed(self, sub: Subscription, head: TreeHead) -> list[str]:
        """The signed notifications ``sub`` is owed up to ``head``."""
        with self.factory() as s:
            if sub.sub_type == "single":
                ids = [sub.incident_id] if sub.incident_id is not None and (
                    sub.sent_size is None or sub.incident_id in changed_incidents(
                        session=s, from_size=sub.sent_size, to_size=head.tree_size)) else []
            elif sub.sent_size is None:
                since = changed_incidents(session=s, from_size=min(sub.witnessed,
                                                                   head.tree_size),
                                          to_size=head.tree_size)
                ids = sorted(set(active_incidents(session=s)) | set(since))
            else:
                ids = changed_incidents(session=s, from_size=sub.sent_size,
                                        to_size=head.tree_size)
            if not ids:
                return []
            with self.mirror.lock:
                tree = self.mirror.sync(s, head.tree_size)
                docs = sealed_documents(session=s, incident_ids=ids, head=head, tree=tree,
                                        centre=self.settings.resolved_federation_centre,
                                        standards_dir=self.settings.standards_dir)
                if sub.witnessed <= head.tree_size:
                    proof = tree.consistency_proof(sub.witnessed, head.tree_size)
                else:  # the subscriber witnessed more than this log has: let it see that
                    proof = []
        consistency = (sub.witnessed, proof)
        return [self.signer.sign(d.with_log(head, consistency, uuid.uuid4().hex)) for d in docs]

    def dereference(self, key: str) -> dict[str, Any] | None:
        """``GET /incidents/{id}``: the incident's EIDO with its proof in the newest head."""
        with self.factory() as s:
            iid = find_incident(session=s, key=key, centre=self.settings.resolved_federation_centre)
            head = current_head(s)
            if iid is None or head is None:
                return None
            with self.mirror.lock:
                tree = self.mirror.sync(s, head.tree_size)
                docs = sealed_documents(session=s, incident_ids=[iid], head=head, tree=tree,
                                        centre=self.settings.resolved_federation_centre,
                                        standards_dir=self.settings.standards_dir)
        return docs[0].with_log(head) if docs else None

    def authenticate(self, authorization: str) -> dict[str, Any]:
        """The subscriber's claims; :class:`Refused` when it is not one of ours."""
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "signature" or not token:
            raise Refused("unsigned", "send Authorization: Signature <JWS credential>")
        return check_credential(token.strip(), self.subscriber_keys,
                                max_skew_s=self.settings.federation_auth_max_skew_s)

    # --- the WebSocket -----------------------------------------------------------------------

    async def serve(self, ws: WebSocket) -> None:
        offered = SUBPROTOCOL in (ws.scope.get("subprotocols") or [])
        # Accepted first so the refusal is a WebSocket close code the client can read.
        await ws.accept(subprotocol=SUBPROTOCOL if offered else None)
        if not offered:
            await ws.close(code=1002, reason=f"subprotocol {SUBPROTOCOL} required")
            return
        try:
            claims = self.authenticate(ws.headers.get("authorization", ""))
        except Refused as exc:
            log.warning("EIDO subscriber refused: %s", exc)
            await ws.close(code=1008, reason=exc.code)
            return
        log.info("EIDO subscriber %s connected", claims.get("iss"))
        await _Connection(self, ws).run()


class _Connection:
    def __init__(self, notifier: Notifier, ws: WebSocket) -> None:
        self.n = notifier
        self.ws = ws
        self.lock = asyncio.Lock()
        self.tasks: dict[str, asyncio.Task[None]] = {}

    async def send(self, kind: str, **members: Any) -> None:
        async with self.lock:
            await self.ws.send_text(message(kind, **members))

    async def run(self) -> None:
        try:
            while True:
                raw = await self.ws.receive_text()
                try:
                    kind, body = read_message(raw)
                except ValueError as exc:
                    log.warning("unreadable STA-024 message: %s", exc)
                    continue
                if kind == "subscribe":
                    await self.subscribe(body)
                elif kind == "unsubscribe":
                    sid = str(body.get("subscriptionId"))
                    task = self.tasks.pop(sid, None)
                    if task is not None:
                        task.cancel()
                    await self.send("unsubscribeResponse", subscriptionId=sid,
                                    statusCode=200 if task else 404,
                                    statusText="OK" if task else "no such subscription")
                elif kind == "terminate":
                    await self.send("terminateResponse", statusCode=200, statusText="OK")
                    await self.ws.close()
                    return
                elif kind == "eventResponse" and body.get("statusCode") not in (200, "200"):
                        log.warning("subscriber answered event %s with %s %s",
                                    body.get("transactionId"), body.get("statusCode"),
                                    body.get("statusText"))
        except WebSocketDisconnect:
            pass
        finally:
            for task in self.tasks.values():
                task.cancel()

    async def subscribe(self, body: dict[str, Any]) -> None:
        rid = body.get("requestId")
        limit = self.n.settings.federation_max_expires_s

        async def refuse(code: int, why: str) -> None:
            await self.send("subscribeResponse", requestId=rid, statusCode=code, statusText=why)

        if body.get("requestType") != "EIDO":
            return await refuse(400, f"requestType {body.get('requestType')!r} not supported")
        sub_type = body.get("requestSubType", "new")
        if sub_type not in ("new", "single"):
            return await refuse(400, f"requestSubType {sub_type!r} not supported")
        incident_id = None
        if sub_type == "single":
            incident_id = await asyncio.to_thread(self.n.find, str(body.get("incidentId", "")))
            if incident_id is None:
                return await refuse(404, f"no incident {body.get('incidentId')!r}")
        try:
            expires = min(int(body.get("expires") or limit), limit)
            rates = [float(body[k]) if body.get(k) is not None else None
                     for k in ("minRate", "maxRate")]
            witnessed = int(body.get("geodispatchWitnessedTreeSize") or 0)
        except (TypeError, ValueError):
            return await refuse(400, "expires, minRate, maxRate must be numbers")
        if expires <= 0 or any(r is not None and r <= 0 for r in rates) or witnessed < 0:
            return await refuse(400, "expires, minRate, maxRate must be positive")
        sub = Subscription(uuid.uuid4().hex, sub_type, incident_id, witnessed, expires,
                           rates[0], rates[1])
        await self.send("subscribeResponse", requestId=rid, subscriptionId=sub.sid,
                        statusCode=200, statusText="OK", expires=expires)
        self.tasks[sub.sid] = asyncio.create_task(self.feed(sub))

    async def feed(self, sub: Subscription) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + sub.expires_s
        last_send = loop.time()
        poll = self.n.settings.federation_poll_s
        try:
            while True:
                now = loop.time()
                if now >= deadline:
                    await self.send("terminate", subscriptionId=sub.sid, reason="expired")
                    self.tasks.pop(sub.sid, None)
                    return
                head = await asyncio.to_thread(self.n.head)
                if head is not None and (sub.sent_size is None
                                         or head.tree_size > sub.sent_size):
                    if sub.max_rate and sub.sent_size is not None \
                            and now - last_send < 1 / sub.max_rate:
                        await asyncio.sleep(1 / sub.max_rate - (now - last_send))
                        continue
                    tokens = await asyncio.to_thread(self.n.signed, sub, head)
                    for i in range(0, len(tokens), BATCH):
                        await self.send("event", subscriptionId=sub.sid,
                                        transactionId=uuid.uuid4().hex,
                                        notification=tokens[i:i + BATCH])
                    if tokens:
                        last_send = loop.time()
                        sub.witnessed = head.tree_size
                    sub.sent_size = head.tree_size
                elif sub.min_rate and now - last_send >= 1 / sub.min_rate:
                    # Nothing new: an empty notification tells the subscriber we are alive.
                    await self.send("event", subscriptionId=sub.sid,
                                    transactionId=uuid.uuid4().hex, notification=[])
                    last_send = now
                await asyncio.sleep(poll)
        except asyncio.CancelledError:
            raise
        except WebSocketDisconnect:
            return
        except Exception:  # noqa: BLE001 - one subscription failing must not stay silent
            log.exception("EIDO subscription %s failed", sub.sid)
            with contextlib.suppress(Exception):
                await self.send("terminate", subscriptionId=sub.sid, reason="internal error")
