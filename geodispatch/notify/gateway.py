"""SMS gateways: one small interface, a log/file backend (default) and a generic HTTP JSON one."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import httpx

from geodispatch.errors import ConfigurationError
from geodispatch.settings import Settings


class GatewayError(Exception):
    """Delivery failed; ``permanent`` failures are not retried."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class Gateway(Protocol):
    def send(self, *, phone: str, body: str, ref: str) -> str:
        """Hand one message over; return the gateway's id; raise GatewayError on failure."""


class FileGateway:
    """Appends each message as a JSON line to a file (``var/sms.log`` by default)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def send(self, *, phone: str, body: str, ref: str) -> str:
        gid = f"file-{uuid.uuid4().hex[:12]}"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps({"id": gid, "at": datetime.now(UTC).isoformat(), "to": phone,
                                 "ref": ref, "body": body}, ensure_ascii=False) + "\n")
        return gid


class HttpGateway:
    """POSTs ``{"to", "body", "ref"}`` as JSON with a bearer token; expects 2xx ``{"id": ...}``."""

    def __init__(self, url: str, token: str, *, timeout: float = 10.0) -> None:
        self.url = url
        self.token = token
        self.client = httpx.Client(timeout=timeout)

    def send(self, *, phone: str, body: str, ref: str) -> str:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        try:
            r = self.client.post(self.url, json={"to": phone, "body": body, "ref": ref},
                                 headers=headers)
        except httpx.HTTPError as exc:
            raise GatewayError(f"gateway unreachable: {exc}") from None
        if r.status_code >= 500 or r.status_code == 429:
            raise GatewayError(f"gateway answered {r.status_code}")
        if r.status_code >= 400:
            raise GatewayError(f"gateway refused: {r.status_code} {r.text[:200]}", permanent=True)
        try:
            return str(r.json().get("id") or ref)
        except ValueError:
            return ref

    def close(self) -> None:
        self.client.close()


def make_gateway(settings: Settings) -> Gateway:
    if settings.sms_backend == "log":
        return FileGateway(settings.var_dir / "sms.log")
    if settings.sms_backend == "http":
        if not settings.sms_http_url:
            raise ConfigurationError("sms_backend=http needs GEODISPATCH_SMS_HTTP_URL")
        return HttpGateway(settings.sms_http_url, settings.sms_http_token)
    raise ConfigurationError(f"unknown sms_backend {settings.sms_backend!r} (log or http)")
