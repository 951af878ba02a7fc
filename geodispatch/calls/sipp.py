"""SIPp runs against the SIP edge: callers (uac) and the call-taker's phone (uas).

Used by the tests and the benchmark; the scenarios are in ``geodispatch/calls/sipp/``.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from geodispatch.calls.kamailio import SIPP_DIR


def numbers_csv(path: Path, rows: Sequence[Sequence[object]]) -> Path:
    """A SIPp injection file (``field0`` = caller number, then any further fields)."""
    path.write_text("SEQUENTIAL\n" + "".join(";".join(map(str, r)) + ";\n" for r in rows))
    return path


def sipp(scenario: str, *, port: int, workdir: Path, target: str | None = None,
         service: str = "102", calls: int | None = None, rate: float | None = None,
         inject: Path | None = None, timeout_s: int = 120, limit: int | None = None,
         extra: Sequence[str] = ()) -> subprocess.Popen[bytes]:
    """Start SIPp with ``scenario`` (file name in the scenarios folder) on 127.0.0.1:``port``;
    as a caller when ``target`` (host:port) is given, else as a phone waiting for calls."""
    binary = shutil.which("sipp") or "/usr/bin/sipp"
    cmd = [binary] + ([target] if target else []) + [
        "-sf", str(SIPP_DIR / scenario), "-i", "127.0.0.1", "-p", str(port), "-s", service,
        "-nostdin", "-timeout", f"{timeout_s}s", "-trace_err", "-max_recv_loops", "10000"]
    if calls is not None:
        cmd += ["-m", str(calls)]
    if rate is not None:
        cmd += ["-r", str(rate)]
    if limit is not None:
        cmd += ["-l", str(limit)]
    if inject is not None:
        cmd += ["-inf", str(inject)]
    cmd += list(extra)
    workdir.mkdir(parents=True, exist_ok=True)
    with (workdir / f"{Path(scenario).stem}-{port}.out").open("wb") as log:
        return subprocess.Popen(cmd, cwd=workdir, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
