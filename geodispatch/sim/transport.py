"""Publishing simulated terminals over the real MQTT broker.

Two modes:

* **per-unit** (the demo): one paho client per crew, logging in with the crew's own device id and
  token, so the broker's ACL is exercised exactly as real terminals would; each client subscribes
  to its own ``geodispatch/units/{device}/assignment``. All clients are driven from the simulator's
  single thread through one epoll selector (no thread per client, no locks).
* **shared** (benchmarks): one connection with the server account publishes for every crew and
  receives every assignment through a wildcard subscription.

Positions and statuses are QoS 1, as the ingest worker's lossless guarantee assumes.
"""

from __future__ import annotations

import contextlib
import json
import logging
import selectors
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from geodispatch.settings import Settings
from geodispatch.sim.payloads import (
    dumps,
    native_batch,
    native_position,
    native_topic,
    owntracks_location,
    owntracks_topic,
    status_message,
)
from geodispatch.sim.unit import AckOut, Out, PositionOut, StatusOut, UnitSpec

log = logging.getLogger(__name__)

AssignmentHandler = Callable[[str, Any], None]


def _host_port(settings: Settings) -> tuple[str, int]:
    parts = urlsplit(settings.mqtt_url)
    return parts.hostname or "127.0.0.1", parts.port or 1883


def _decode(payload: bytes | bytearray) -> Any:
    if not payload.strip():
        return None
    try:
        return json.loads(payload)
    except ValueError:
        log.warning("unreadable assignment payload %r", payload[:80])
        return None


class MqttTransport:
    """Paho clients for the simulated fleet, driven from the caller's thread.

    Parameters
    ----------
    settings
        Broker address (and the server account for ``shared``).
    units
        The crews; in per-unit mode each gets its own connection with its credentials.
    on_assignment
        Called as ``(device, decoded payload or None)`` from inside :meth:`pump`.
    shared
        Publish everything over one connection with the server account (benchmarks).
    """

    def __init__(self, settings: Settings, units: list[UnitSpec], *,
                 on_assignment: AssignmentHandler, shared: bool = False,
                 client_prefix: str = "sim") -> None:
        self.settings = settings
        self.host, self.port = _host_port(settings)
        self.on_assignment = on_assignment
        self.shared = shared
        self.prefix = client_prefix
        self.clients: dict[str, mqtt.Client] = {}
        self._by_client: list[mqtt.Client] = []
        self._retry_at: dict[int, float] = {}
        self._selector = selectors.DefaultSelector()
        self._socks: dict[int, Any] = {}
        self._next_misc = 0.0
        self._started: set[int] = set()
        self.published = 0
        self.errors = 0
        self.connected: set[str] = set()
        self.units = units

    # --- connections ---------------------------------------------------------------------------
    def _make(self, client_id: str, username: str, password: str, topic: str) -> mqtt.Client:
        c = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2,
                        client_id=client_id, protocol=mqtt.MQTTv311, clean_session=True)
        c.username_pw_set(username, password)
        c.max_inflight_messages_set(100)

        def on_connect(client: mqtt.Client, userdata: Any, flags: Any, rc: Any,
                       props: Any = None) -> None:
            if rc.is_failure:
                log.warning("broker refused %s: %s", username, rc)
                return
            self.connected.add(username)
            client.subscribe(topic, qos=1)

        def on_disconnect(client: mqtt.Client, userdata: Any, flags: Any, rc: Any,
                          props: Any = None) -> None:
            self.connected.discard(username)

        def on_message(client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
            parts = msg.topic.split("/")
            if len(parts) >= 4 and parts[3] == "assignment":
                self.on_assignment(parts[2], _decode(msg.payload))

        c.on_connect = on_connect
        c.on_disconnect = on_disconnect
        c.on_message = on_message
        return c

    def connect(self) -> None:
        """Open every connection; CONNACKs are read in between, so none waits long."""
        if self.shared:
            from geodispatch.tracking.broker import server_credentials

            user, password, _h, _p = server_credentials(self.settings)
            c = self._make(f"{self.prefix}-shared", user, password,
                           "geodispatch/units/+/assignment")
            for u in self.units:
                self.clients[u.device] = c
            self._by_client = [c]
        else:
            for u in self.units:
                c = self._make(f"{self.prefix}-{u.device}", u.device, u.token,
                               native_topic(u.device, "assignment"))
                self.clients[u.device] = c
                self._by_client.append(c)
        for i, c in enumerate(self._by_client):
            self._started.add(id(c))
            try:
                c.connect(self.host, self.port, keepalive=60)
            except OSError as exc:
                log.warning("cannot connect to the broker at %s:%s: %s", self.host, self.port, exc)
                self._retry_at[id(c)] = time.monotonic() + 2.0
            self._watch(c)
            if i % 100 == 99:
                self.pump()

    def _watch(self, c: mqtt.Client) -> None:
        """Keep the selector registration in step with the client's current socket."""
        sock = c.socket()
        old = self._socks.get(id(c))
        if sock is old:
            return
        if old is not None:
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(old)
        if sock is not None:
            self._selector.register(sock, selectors.EVENT_READ, c)
        self._socks[id(c)] = sock

    def wait_connected(self, timeout: float = 10.0) -> int:
        """Pump until every connection is acknowledged (or ``timeout``); return how many are."""
        want = 1 if self.shared else len(self._by_client)
        deadline = time.monotonic() + timeout
        while len(self.connected) < want and time.monotonic() < deadline:
            self.pump()
            time.sleep(0.01)
        return len(self.connected)

    def pump(self) -> None:
        """Do pending network work without blocking; reconnect lost connections.

        paho's own ``loop()`` uses ``select()``, which cannot watch file descriptors above 1024,
        so a process with a thousand crews drives the clients through an epoll selector and
        paho's ``loop_read`` / ``loop_write`` / ``loop_misc`` instead.
        """
        for key, _events in self._selector.select(timeout=0):
            c: mqtt.Client = key.data
            if c.loop_read(max_packets=20) != mqtt.MQTT_ERR_SUCCESS:
                self._watch(c)
        for c in self._by_client:
            if c.want_write():
                c.loop_write()
        now = time.monotonic()
        if now < self._next_misc:
            return
        self._next_misc = now + 1.0
        for c in self._by_client:
            if c.socket() is not None:
                c.loop_misc()  # keepalive pings, and noticing a dead broker
            elif id(c) in self._started and now >= self._retry_at.get(id(c), 0.0):
                self._retry_at[id(c)] = now + 2.0
                with contextlib.suppress(OSError, ValueError):
                    c.reconnect()
            self._watch(c)

    def close(self) -> None:
        for c in self._by_client:
            try:
                c.disconnect()
                if c.want_write():
                    c.loop_write()
            except Exception:  # noqa: BLE001 - best effort at shutdown
                pass
        self._selector.close()

    # --- publishing ----------------------------------------------------------------------------
    def _publish(self, device: str, topic: str, payload: object) -> None:
        info = self.clients[device].publish(topic, dumps(payload), qos=1)
        if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
            self.errors += 1
        else:
            self.published += 1  # NO_CONN: paho keeps QoS 1 messages and sends them on reconnect

    def send(self, out: Out) -> None:
        u = out.unit
        if isinstance(out, AckOut):
            self._publish(u.device, native_topic(u.device, "assignment/ack"), {
                "id": out.assignment_id, "state": out.state, "key": out.key,
                "t": out.at.isoformat(timespec="milliseconds")})
            return
        if isinstance(out, StatusOut):
            self._publish(u.device, native_topic(u.device, "status"),
                          status_message(out.status, out.at, out.incident_id))
            return
        assert isinstance(out, PositionOut)
        if u.protocol == "owntracks":
            # The app queues messages while offline and sends each one when it can.
            for fix in out.fixes:
                self._publish(u.device, owntracks_topic(u.device, u.device),
                              owntracks_location(fix, tid=u.call_sign))
        elif out.batch:
            self._publish(u.device, native_topic(u.device, "position"), native_batch(out.fixes))
        else:
            self._publish(u.device, native_topic(u.device, "position"),
                          native_position(out.fixes[0]))
