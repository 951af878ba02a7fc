"""MQTT plumbing: the server's client (MQTT 5, persistent session) and the topics it uses.

Topics (``{device}`` is the unit's ``device_id`` = its MQTT username; the broker ACL lets a device
use only its own)::

    geodispatch/units/{device}/position     device -> server, QoS 1, native JSON (one or an array)
    geodispatch/units/{device}/status       device -> server, QoS 1, {"status": ..., "t": ...}
    geodispatch/units/{device}/assignment   server -> device, QoS 1, retained (empty = cleared);
                                            JSON carrying its ``id`` (or ``assignment_id``)
    geodispatch/units/{device}/assignment/ack  device -> server, ``{"id": <assignment id>}``:
                                            the worker clears the retained assignment if it is
                                            still that one (a newer one is never cleared)
    owntracks/{user}/{device}               OwnTracks app -> server (user = MQTT username)

Ingest workers subscribe through the MQTT 5 shared subscription ``$share/<group>/...`` so N workers
split the load, each with its own persistent session (``clean_start=False`` and a session expiry),
so the broker keeps their messages while they are down.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import orjson
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from geodispatch.errors import ConfigurationError
from geodispatch.settings import Settings
from geodispatch.tracking.broker import server_credentials

log = logging.getLogger(__name__)

POSITION_TOPIC = "geodispatch/units/{device}/position"
STATUS_TOPIC = "geodispatch/units/{device}/status"
ASSIGNMENT_TOPIC = "geodispatch/units/{device}/assignment"
INGEST_FILTERS = ("geodispatch/units/+/position", "geodispatch/units/+/status", "owntracks/+/+",
                  "geodispatch/units/+/assignment/ack")
# Not shared: every worker follows the retained assignments, to know which one an ack is for.
ASSIGNMENT_FILTER = "geodispatch/units/+/assignment"
RECEIVE_MAXIMUM = 65535  # unacknowledged QoS 1 messages the broker may have in flight to us


def shared(group: str, topic_filter: str) -> str:
    """The MQTT 5 shared-subscription form of ``topic_filter``."""
    return f"$share/{group}/{topic_filter}"


def connect_properties(settings: Settings, *, session_expiry_s: int | None = None) -> Properties:
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = (
        settings.mqtt_session_expiry_s if session_expiry_s is None else session_expiry_s
    )
    props.ReceiveMaximum = RECEIVE_MAXIMUM
    return props


#: The server's clients reconnect after this long, doubling up to the maximum (seconds): short,
#: so that after a broker restart they subscribe again before trackers (whose apps back off a
#: second or more) publish into subscriptions the broker has forgotten. A few attempts a second
#: against a broker that is down costs nothing.
RECONNECT_MIN_S = 0.1
RECONNECT_MAX_S = 0.25

def make_client(
    settings: Settings,
    client_id: str,
    *,
    clean_start: bool = False,
    connect: bool = True,
    session_expiry_s: int | None = None,
    timeout_s: float = 10.0,
) -> paho.Client:
    """The server's MQTT 5 client with its credentials.

    With ``connect`` (default) it connects and starts paho's network thread; the caller ends it
    with ``client.loop_stop(); client.disconnect()``. Without, it is configured but not connected
    (the ingest worker sets its callbacks first, then calls :func:`connect`).
    """
    client = paho.Client(
        CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5,
    )
    user, password, _host, _port = server_credentials(settings)
    client.username_pw_set(user, password)
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    # Back within a fraction of a second after a broker restart: Mosquitto 2.0.11 (Debian 12)
    # restores an MQTT 5 session but not its subscriptions, and no shared subscription at all,
    # so what trackers publish before the workers subscribe again has nobody to go to.
    reconnect_fast(client)
    client._gd_clean_start = clean_start  # type: ignore[attr-defined]
    client._gd_session_expiry = session_expiry_s  # type: ignore[attr-defined]
    client._gd_settings = settings  # type: ignore[attr-defined]
    if connect:
        ready = threading.Event()

        def on_connect(c: paho.Client, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
            ready.set()

        client.on_connect = on_connect
        connect_client(client)
        client.loop_start()
        if not ready.wait(timeout_s):
            client.loop_stop()
            raise ConfigurationError(f"MQTT broker at {settings.mqtt_url.split('@')[-1]} did not "
                                     "accept the connection: run `make services`")
    return client


def reconnect_fast(client: paho.Client) -> None:
    """Reconnect within :data:`RECONNECT_MAX_S` of the broker coming back (see above)."""
    # paho types the delays as int but waits with float arithmetic; fractions work.
    client.reconnect_delay_set(min_delay=RECONNECT_MIN_S,  # type: ignore[arg-type]
                               max_delay=RECONNECT_MAX_S)  # type: ignore[arg-type]


def connect_client(client: paho.Client) -> None:
    """Connect (non-blocking handshake) with the options :func:`make_client` recorded."""
    settings: Settings = client._gd_settings  # type: ignore[attr-defined]
    _user, _pw, host, port = server_credentials(settings)
    try:
        client.connect(
            host, port, keepalive=30,
            clean_start=client._gd_clean_start,  # type: ignore[attr-defined]
            properties=connect_properties(
                settings, session_expiry_s=client._gd_session_expiry  # type: ignore[attr-defined]
            ),
        )
    except OSError as exc:
        raise ConfigurationError(
            f"MQTT broker {host}:{port} is not reachable ({exc}): run `make services`"
        ) from None


def publish_assignment(
    client: paho.Client, device_id: str, payload: dict[str, Any] | None
) -> paho.MQTTMessageInfo:
    """Publish an assignment to the crew's terminal: retained, QoS 1; ``None`` clears it."""
    body = orjson.dumps(payload) if payload is not None else b""
    return client.publish(
        ASSIGNMENT_TOPIC.format(device=device_id), body, qos=1, retain=True
    )


def drop_session(settings: Settings, client_id: str) -> None:
    """Delete a persistent session (and its queued messages) from the broker."""
    client = make_client(settings, client_id, clean_start=True, session_expiry_s=0)
    client.disconnect()
    client.loop_stop()
