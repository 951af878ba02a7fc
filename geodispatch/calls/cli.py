"""``geodispatch calls ...``: post again the reports a Kamailio edge logged (``replay-edge-log``).

The edge writes every report it queues to its log (``geodispatch-report: event=...``). If
Kamailio itself went down while the project was unreachable, what was queued in its memory is
gone, but not from the log: posting the log's reports again records every call that is missing
(each report is idempotent, so the ones already recorded change nothing).
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

MARK = "geodispatch-report: "
#: Reports in one POST (the endpoint takes bodies up to 256 kB).
CHUNK_BYTES = 200_000


def edge_log_reports(lines: Iterable[str]) -> Iterator[str]:
    """The report lines (``event=...``) of a Kamailio edge's log, in order."""
    for line in lines:
        at = line.find(MARK)
        if at >= 0:
            report = line[at + len(MARK):].strip()
            if report.startswith("event="):
                yield report


def replay(reports: Iterable[str], *, url: str, token: str = "") -> dict[str, int]:
    """Post ``reports`` to ``url`` (``.../api/calls/sip/batch``) in chunks; what came back."""
    import httpx

    headers = {"Content-Type": "text/plain"}
    if token:
        headers["X-Phone-System-Token"] = token
    out = {"reports": 0, "created": 0, "refused": 0}

    def post(chunk: list[str]) -> None:
        r = httpx.post(url, content="\n".join(chunk).encode(), headers=headers, timeout=60)
        r.raise_for_status()
        for res in r.json()["results"]:
            out["reports"] += 1
            out["created"] += bool(res.get("created"))
            if not res.get("ok"):
                out["refused"] += 1
                log.warning("report refused: %s", res.get("error"))

    chunk: list[str] = []
    size = 0
    for rep in reports:
        if chunk and size + len(rep) + 1 > CHUNK_BYTES:
            post(chunk)
            chunk, size = [], 0
        chunk.append(rep)
        size += len(rep) + 1
    if chunk:
        post(chunk)
    return out


def _replay(args: argparse.Namespace) -> int:
    from geodispatch.settings import get_settings

    s = get_settings()
    url = args.url or f"http://{s.api_host}:{s.api_port}/api/calls/sip/batch"
    with Path(args.log).open(errors="replace") as fh:
        out = replay(edge_log_reports(fh), url=url, token=args.token or s.calls_webhook_token)
    print(f"{out['reports']} reports posted: {out['created']} calls recorded now, "
          f"{out['refused']} refused")
    return 0


def register(sub: Any) -> None:
    calls = sub.add_parser("calls", help="calls from the phone system")
    csub = calls.add_subparsers(dest="calls_command", metavar="ACTION", required=True)
    r = csub.add_parser("replay-edge-log", help="post again the reports a Kamailio edge logged "
                        "(after Kamailio went down while the project was unreachable)")
    r.add_argument("log", help="the edge's kamailio.log")
    r.add_argument("--url", default="", help="the batch endpoint (default: this server's "
                   "/api/calls/sip/batch)")
    r.add_argument("--token", default="", help="phone-system token (default: "
                   "GEODISPATCH_CALLS_WEBHOOK_TOKEN)")
    r.set_defaults(func=_replay)
