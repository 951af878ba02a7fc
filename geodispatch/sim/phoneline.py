"""The demo's simulated phone line: real SIP calls to 102 through the project's Kamailio.

``geodispatch phoneline --base-url URL`` brings up the SIP edge (:mod:`geodispatch.calls.kamailio`,
its own ports and directory) reporting to ``URL/api/calls/sip``, a SIPp phone that rings and never
answers by itself (the call-takers answer on the console), and one SIPp caller per call
(``uac_demo.xml``) at random intervals (``--every-s`` on average). Each caller rings for a
random ``--ring-s`` time and then hangs up: a call the console answered meanwhile is then
"hung up, outcome needed"; one nobody answered is abandoned (a callback and an SMS). A share of
the callers (``--aml-share``) send an AML HTTPS form POST 1-3 s after dialling, with a point in
``--bbox`` and a 10-80 m accuracy circle, so the call-taker's map shows where they are.
"""

from __future__ import annotations

import argparse
import heapq
import logging
import random
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx

from geodispatch.calls.kamailio import EdgeConfig, Kamailio
from geodispatch.calls.sipp import numbers_csv, sipp
from geodispatch.settings import get_settings

log = logging.getLogger(__name__)


def _free_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def aml_form(number: str, lat: float, lng: float, accuracy_m: float) -> dict[str, str]:
    """An AML HTTPS form (ETSI TS 103 625) with a GNSS fix taken a second ago."""
    return {"v": "1", "emergency_number": "112", "device_number": number,
            "location_latitude": f"{lat:.6f}", "location_longitude": f"{lng:.6f}",
            "location_accuracy": f"{accuracy_m:.0f}",
            "location_time": str(int(time.time() * 1000) - 1000),
            "location_source": "gps", "location_confidence": "0.68"}


class _Stop(Exception):
    pass


def run_phoneline(args: argparse.Namespace) -> int:
    settings = get_settings()
    if not (shutil.which("kamailio") and shutil.which("sipp")):
        log.error("phoneline: needs Debian's kamailio, kamailio-utils-modules and sip-tester")
        return 2
    base = args.base_url.rstrip("/")
    bbox = [float(x) for x in args.bbox.split(",")] if args.bbox else None
    if bbox is not None and len(bbox) != 4:
        log.error("phoneline: --bbox is min_lat,min_lng,max_lat,max_lng")
        return 2
    work = Path(args.work_dir) if args.work_dir else settings.var_dir / "phoneline"
    shutil.rmtree(work / "callers", ignore_errors=True)
    (work / "callers").mkdir(parents=True, exist_ok=True)
    rng = random.Random(args.seed)
    sip_port, phone_port = _free_port(), _free_port()
    # Both Kamailio targets are the ringing phone: on the demo line nobody answers in SIP.
    edge = Kamailio(EdgeConfig("127.0.0.1", sip_port, f"127.0.0.1:{phone_port}",
                               f"127.0.0.1:{phone_port}", f"{base}/api/calls/sip",
                               token=settings.calls_webhook_token), work / "kamailio")

    def on_signal(signum: int, frame: Any) -> None:
        raise _Stop(signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    callers: list[subprocess.Popen[bytes]] = []
    phone: subprocess.Popen[bytes] | None = None
    aml_due: list[tuple[float, str]] = []
    placed = failed = aml_sent = aml_refused = 0
    headers = {"X-Phone-System-Token": settings.calls_webhook_token} \
        if settings.calls_webhook_token else {}
    try:
        edge.start()
        phone = sipp("uas_ringing.xml", port=phone_port, workdir=work, timeout_s=10**7)
        log.info("phoneline: SIP edge on 127.0.0.1:%d reporting to %s", sip_port, base)
        next_call = time.monotonic() + 1.0
        with httpx.Client(timeout=10) as http:
            while args.calls is None or placed < args.calls or callers or aml_due:
                now = time.monotonic()
                if (args.calls is None or placed < args.calls) and now >= next_call:
                    number = f"+38067{rng.randrange(10**7):07d}"
                    ring_ms = int(rng.uniform(*args.ring_s) * 1000)
                    inject = numbers_csv(work / "callers" / f"{placed}.csv", [[number]])
                    callers.append(sipp("uac_demo.xml", port=_free_port(),
                                        workdir=work / "callers",
                                        target=f"127.0.0.1:{sip_port}", calls=1, inject=inject,
                                        timeout_s=ring_ms // 1000 + 60,
                                        extra=["-d", str(ring_ms)]))
                    placed += 1
                    if bbox is not None and rng.random() < args.aml_share:
                        heapq.heappush(aml_due, (now + rng.uniform(1.0, 3.0), number))
                    next_call = now + rng.expovariate(1.0 / args.every_s)
                while aml_due and aml_due[0][0] <= now and bbox is not None:
                    _t, number = heapq.heappop(aml_due)
                    lat, lng = rng.uniform(bbox[0], bbox[2]), rng.uniform(bbox[1], bbox[3])
                    try:
                        r = http.post(f"{base}/api/calls/aml/https", headers=headers,
                                      data=aml_form(number, lat, lng, rng.uniform(10, 80)))
                        aml_sent += 1
                        if r.status_code != 200:
                            aml_refused += 1
                            log.warning("phoneline: AML refused: %s", r.text[:200])
                    except httpx.HTTPError as exc:
                        aml_refused += 1
                        log.warning("phoneline: AML not delivered: %s", exc)
                for p in [p for p in callers if p.poll() is not None]:
                    callers.remove(p)
                    failed += p.returncode != 0
                if phone.poll() is not None:
                    log.error("phoneline: the ringing phone stopped (%s)", phone.returncode)
                    return 1
                time.sleep(0.2)
        log.info("phoneline: %d calls placed (%d SIPp failures), %d AML sent (%d refused)",
                 placed, failed, aml_sent, aml_refused)
        return 0 if failed == 0 and aml_refused == 0 else 1
    except _Stop:
        log.info("phoneline: stopping after %d calls", placed)
        return 0
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        _line_down(base, [p for p in callers if p.poll() is None], headers)
        for p in callers + ([phone] if phone is not None else []):
            if p.poll() is None:
                p.kill()
                p.wait(timeout=5)
        edge.stop()
        signal.signal(signal.SIGINT, signal.SIG_DFL)


def _line_down(base: str, ringing: list[subprocess.Popen[bytes]],
               headers: dict[str, str]) -> None:
    """The line goes down with callers still ringing: report each as hung up, as the SIP edge
    would, so that no call is left ringing in the record. (SIPp names a process's first call
    ``1-<pid>@<local ip>``.)"""
    if not ringing:
        return
    with httpx.Client(timeout=5) as http:
        for p in ringing:
            try:
                http.post(f"{base}/api/calls/sip", headers=headers, content=b"-", params={
                    "event": "cancel", "call_id": f"1-{p.pid}@127.0.0.1"})
            except httpx.HTTPError as exc:
                log.warning("phoneline: could not report call of SIPp %d as ended: %s",
                            p.pid, exc)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--base-url", required=True, help="the API, e.g. http://127.0.0.1:8000")
    p.add_argument("--every-s", type=float, default=20.0,
                   help="mean seconds between calls (exponential gaps)")
    p.add_argument("--ring-s", type=float, nargs=2, default=(15.0, 60.0), metavar=("MIN", "MAX"),
                   help="how long a caller lets it ring before hanging up")
    p.add_argument("--aml-share", type=float, default=0.6,
                   help="share of callers whose handset sends AML")
    p.add_argument("--bbox", default=None,
                   help="min_lat,min_lng,max_lat,max_lng of the callers' AML points")
    p.add_argument("--calls", type=int, default=None, help="stop after N calls")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--work-dir", default=None, help="default: var/phoneline")
