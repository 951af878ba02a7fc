"""``geodispatch serve``: the API, the dispatcher map and (by default) the ingest worker."""

from __future__ import annotations

import argparse


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from geodispatch.api.app import create_app
    from geodispatch.settings import get_settings

    settings = get_settings()
    if args.no_ingest:
        settings.serve_ingest = False
    uvicorn.run(
        create_app(settings),
        host=args.host or settings.api_host,
        port=args.port or settings.api_port,
        log_level="info",
        ws_max_size=1 << 20,
        # The live feed is many small JSON updates a second; compressing them costs more server
        # CPU than the LAN bandwidth saved (bench/live.py --deflate shows latency triple).
        ws_per_message_deflate=False,
        # Open crew streams (Server-Sent Events) never end by themselves: on shutdown they are
        # cut after 5 s and the terminals reconnect (with Last-Event-ID) to the next server.
        timeout_graceful_shutdown=5,
    )
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("serve", help="serve the API and dispatcher map (and run ingest)")
    p.add_argument("--host", default=None)
    p.add_argument("--port", type=int, default=None)
    p.add_argument("--no-ingest", action="store_true",
                   help="do not run the MQTT ingest worker here")
    p.set_defaults(func=_serve)
