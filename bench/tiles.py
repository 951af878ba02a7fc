"""Vector tiles: build time and size per real extract, and the tile endpoint's latency.

Builds the base map's MBTiles from every extract in ``$GEODISPATCH_DATA_DIR/osm`` with tilemaker
(``geodispatch.tiles.build``), then serves the Baltimore one through the real app (uvicorn on a
free port) and times ``GET /tiles/{z}/{x}/{y}.pbf`` over every stored tile (sequential, one
keep-alive connection). Needs no database rows; the app's lifespan checks the database. Ends
with one JSON line.
"""

from __future__ import annotations

import json
import socket
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import uvicorn

from geodispatch.api.app import create_app
from geodispatch.settings import get_settings
from geodispatch.tiles.build import build_tiles

EXTRACTS = ("andorra_2013.osm.pbf", "baltimore_downtown_2015.osm.pbf", "krems_austria.osm.gz",
            "moscow_north_part_2013.osm.gz", "porto_centre_2020.osm.pbf",
            "sf_mission_bernal_2014.osm", "west_oakland_2016.osm.bz2")


def main() -> int:
    settings = get_settings()
    osm = settings.data_dir / "osm"
    builds = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in EXTRACTS:
            r = build_tiles(osm_file=osm / name, out=Path(tmp) / f"{name}.mbtiles")
            builds[name] = {"seconds": round(r.seconds, 2), "mb": round(r.bytes / 1e6, 3),
                            "tiles": r.tiles, "source_mb": round((osm / name).stat().st_size
                                                                 / 1e6, 3)}
            print(f"{name}: {builds[name]}", file=sys.stderr)
        path = Path(tmp) / "baltimore_downtown_2015.osm.pbf.mbtiles"
        with sqlite3.connect(path) as conn:
            rows = conn.execute("SELECT zoom_level, tile_column, tile_row FROM tiles").fetchall()
        conn.close()
        app = create_app(settings.model_copy(update={"tiles_path": path, "serve_ingest": False}))
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                               log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.05)
        times = []
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
                for _ in range(5):
                    for z, x, tms in rows:
                        t0 = time.perf_counter()
                        r = client.get(f"/tiles/{z}/{x}/{(1 << z) - 1 - tms}.pbf")
                        times.append(time.perf_counter() - t0)
                        assert r.status_code == 200, r.text
        finally:
            server.should_exit = True
            thread.join(timeout=15)
    times.sort()
    out = {"bench": "tiles", "builds": builds, "requests": len(times),
           "tile_p50_ms": round(statistics.median(times) * 1e3, 2),
           "tile_p95_ms": round(times[int(len(times) * 0.95)] * 1e3, 2)}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
