"""The project's Mosquitto as `geodispatch broker setup` configures it: not root, and a TLS
listener by setting. A private broker in its own folder and ports (the shared one is untouched)."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from paho.mqtt.enums import CallbackAPIVersion

from geodispatch.errors import ConfigurationError
from geodispatch.settings import Settings
from geodispatch.tracking.broker import add_devices, server_credentials, write_config

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _self_signed(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "geodispatch test broker")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    folder.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = folder / "broker.crt", folder / "broker.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    os.chmod(key_path, 0o600)
    return cert_path, key_path


def _wait_port(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the broker exited at start"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.3).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"nothing listens on {port}")


@pytest.fixture()
def private_broker(settings: Settings) -> Iterator[tuple[Settings, subprocess.Popen[bytes], Path]]:
    # A folder the broker's user can reach whatever the checkout's parents are (a CI clone may
    # sit in a mode-0700 folder: then the broker rightly stays root, see the test below).
    var = Path(tempfile.mkdtemp(prefix="gd-broker-"))
    var.chmod(0o755)
    plain, tls = _free_port(), _free_port()
    cert, key = _self_signed(var / "tls")
    s = settings.model_copy(update={
        "var_dir": var, "mqtt_url": f"mqtt://srv:{uuid.uuid4().hex}@127.0.0.1:{plain}",
        "mqtt_tls_port": tls, "mqtt_tls_host": "127.0.0.1",
        "mqtt_tls_certfile": cert, "mqtt_tls_keyfile": key})
    conf = write_config(s)
    proc = subprocess.Popen(["mosquitto", "-c", str(conf)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        _wait_port(plain, proc)
        _wait_port(tls, proc)
        yield s, proc, cert
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(15)
        shutil.rmtree(var, ignore_errors=True)


def _client(s: Settings, port: int, user: str, password: str, ca: Path | None) -> Any:
    c = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"t-{uuid.uuid4().hex[:8]}",
                    protocol=paho.MQTTv5)
    c.username_pw_set(user, password)
    if ca is not None:
        c.tls_set(ca_certs=str(ca))
    ok = threading.Event()
    c.on_connect = lambda *_a: ok.set() if not _a[3].is_failure else None
    c.connect("127.0.0.1", port)
    c.loop_start()
    assert ok.wait(10), f"connect to {port} failed"
    return c


def test_broker_drops_root_and_serves_tls(private_broker: tuple[Settings, Any, Path]) -> None:
    s, proc, ca = private_broker
    uid = int(next(line.split()[1] for line in Path(f"/proc/{proc.pid}/status").read_text()
                   .splitlines() if line.startswith("Uid:")))
    if os.geteuid() == 0:
        assert uid == pwd.getpwnam(s.mqtt_broker_user).pw_uid, "the broker still runs as root"
    user, password, _h, plain = server_credentials(s)
    device, token = f"dev-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    add_devices(s, [(device, token)])  # SIGHUP: the broker rereads the file as its own user
    got: list[bytes] = []
    arrived = threading.Event()
    server = _client(s, s.mqtt_tls_port or 0, user, password, ca)  # over TLS
    server.on_message = lambda _c, _u, m: (got.append(m.payload), arrived.set())
    server.subscribe(f"geodispatch/units/{device}/position", qos=1)
    time.sleep(0.3)
    for _ in range(50):  # the reload is asynchronous
        try:
            dev = _client(s, plain, device, token, None)
            break
        except AssertionError:
            time.sleep(0.1)
    else:
        raise AssertionError("the new device never got in")
    dev.publish(f"geodispatch/units/{device}/position", b'{"ok": 1}', qos=1).wait_for_publish(5)
    assert arrived.wait(10) and got == [b'{"ok": 1}']
    # A wrong password is refused on the TLS listener too.
    with pytest.raises(AssertionError):
        _client(s, s.mqtt_tls_port or 0, user, "wrong", ca)
    for c in (server, dev):
        c.disconnect()
        c.loop_stop()
    # It can still write its own files: a clean stop saves the persistence file.
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(15) == 0
    assert (s.var_dir / "mosquitto" / "data" / "mosquitto.db").exists()


def test_tls_port_without_a_certificate_is_a_clear_error(settings: Settings,
                                                         tmp_path: Path) -> None:
    s = settings.model_copy(update={"var_dir": tmp_path, "mqtt_tls_port": _free_port()})
    with pytest.raises(ConfigurationError, match="MQTT_TLS_CERTFILE"):
        write_config(s)
    s = s.model_copy(update={"mqtt_tls_certfile": tmp_path / "no.crt",
                             "mqtt_tls_keyfile": tmp_path / "no.key"})
    with pytest.raises(ConfigurationError, match="is not a file"):
        write_config(s)


def test_an_unreachable_folder_keeps_root_and_says_why(settings: Settings,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    """When the broker's user could not open its own files after dropping (a folder above them
    is mode 0700), the config keeps root and the log says which folder and what to do."""
    from geodispatch.tracking import broker

    open_dir = Path(tempfile.mkdtemp(prefix="gd-broker-"))
    open_dir.chmod(0o755)
    locked = open_dir / "locked"
    locked.mkdir(mode=0o700)
    s = settings.model_copy(update={"var_dir": locked / "var"})
    broker._OWNERS.clear()
    with caplog.at_level("WARNING", logger="geodispatch.tracking.broker"):
        conf = write_config(s)
    assert "user root" in conf.read_text()
    try:
        assert any(f"{locked} is not reachable" in r.getMessage()
                   and "GEODISPATCH_VAR_DIR" in r.getMessage() for r in caplog.records), \
            [r.getMessage() for r in caplog.records]
    finally:
        shutil.rmtree(open_dir, ignore_errors=True)
