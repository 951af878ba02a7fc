"""Micro-benchmark of EIDO validation, per document: jsonschema (the authority) against the
compiled fast path (``geodispatch.federation.schema``), on a document the project builds.

Prints one JSON line: ms per document of each, the one-off bundle + compile time, loadavg.

    PYTHONPATH=. .venv/bin/python bench/eido_validation.py [--n 300]
"""

from __future__ import annotations

import argparse
import json
import os
import time

from geodispatch.federation.eido import build_eido
from geodispatch.federation.schema import eido_errors, eido_errors_slow, fast_validator
from geodispatch.settings import get_settings

T0 = "2026-11-29T06:00:00.000000+00:00"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=300)
    n = ap.parse_args().n
    sd = get_settings().standards_dir
    incident = {"reference": "KV-2026-000042", "region": "KV", "status": "on_scene",
                "category": "theft", "priority": 2, "received_at": T0, "registered_at": T0,
                "closed_at": None, "lat": 50.45, "lng": 30.52, "address": "Khreshchatyk 1",
                "description": "bike stolen", "disposition": None, "sector_code": "KV-D01-S03",
                "district_code": "KV-D01", "source": "call", "created_by": "ct1"}
    events = [{"kind": "registered", "actor": "ct1", "at": T0, "data": {"category": "theft"}}]
    crew = [{"call_sign": "P-12", "kind": "patrol_car", "status": "on_scene", "is_lead": True,
             "capabilities": [], "updated_at": T0}]
    doc = json.loads(json.dumps(build_eido(incident=incident, events=events, resources=crew,
                                           centre="KV", standards_dir=sd)))
    t = time.perf_counter()
    fast_validator(sd)
    build_s = time.perf_counter() - t
    eido_errors_slow(doc, standards_dir=sd)  # the registry's lazy crawl, once
    out: dict[str, float | int | list[float]] = {"documents": n, "fast_build_s": round(build_s, 1)}
    for name, fn in (("jsonschema", eido_errors_slow), ("fast", eido_errors)):
        t = time.perf_counter()
        for _ in range(n):
            assert fn(doc, standards_dir=sd) == []
        out[f"{name}_ms_per_doc"] = round((time.perf_counter() - t) / n * 1000, 3)
    out["loadavg"] = [round(x, 1) for x in os.getloadavg()]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
