"""The SIP edge: render the project's Kamailio configuration and run Kamailio on its own ports.

Kamailio (Debian ``kamailio`` + ``kamailio-utils-modules`` for ``http_client``) proxies each
call to the call-takers' phones and reports its signalling to ``POST /api/calls/sip``
(:mod:`geodispatch.calls.views`). Everything it needs lives in one directory of its own
(config, pid file, runtime dir, log), so it never touches a system Kamailio.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

TEMPLATE = Path(__file__).with_name("kamailio") / "kamailio.cfg.in"
SIPP_DIR = Path(__file__).with_name("sipp")
MODULES = "/usr/lib/x86_64-linux-gnu/kamailio/modules/"


@dataclass(frozen=True)
class EdgeConfig:
    """Where the edge listens, where it sends calls and where it reports them."""

    sip_addr: str
    sip_port: int
    operator: str  # host:port of the answering phone (or the ACD)
    noanswer: str  # host:port for R-URI users starting with "noanswer" (tests, demo)
    report_url: str  # http://host:port/api/calls/sip
    token: str = ""
    children: int = 4


def render(cfg: EdgeConfig) -> str:
    """The configuration text for ``cfg``."""
    if any(c in cfg.token for c in '"\r\n\\'):
        raise ValueError("the phone-system token cannot hold quotes, backslashes or newlines")
    header = f"\\r\\nX-Phone-System-Token: {cfg.token}" if cfg.token else ""
    text = TEMPLATE.read_text()
    for key, value in {"SIP_ADDR": cfg.sip_addr, "SIP_PORT": str(cfg.sip_port),
                       "OPERATOR": cfg.operator, "NOANSWER": cfg.noanswer,
                       "REPORT_URL": cfg.report_url, "TOKEN_HEADER": header,
                       "CHILDREN": str(cfg.children), "MODULES": MODULES}.items():
        text = text.replace(f"@{key}@", value)
    return text


class Kamailio:
    """One Kamailio process with its own directory; ``start()`` / ``stop()``."""

    def __init__(self, cfg: EdgeConfig, workdir: Path) -> None:
        self.cfg = cfg
        self.dir = workdir
        self.pidfile = workdir / "kamailio.pid"
        self.log = workdir / "kamailio.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10.0) -> None:
        binary = shutil.which("kamailio") or "/usr/sbin/kamailio"
        self.dir.mkdir(parents=True, exist_ok=True)
        conf = self.dir / "kamailio.cfg"
        conf.write_text(render(self.cfg))
        check = subprocess.run([binary, "-c", "-f", str(conf)], capture_output=True, text=True)
        if check.returncode != 0:
            raise RuntimeError(f"kamailio refuses its config: {check.stderr[-2000:]}")
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [binary, "-f", str(conf), "-P", str(self.pidfile), "-Y", str(self.dir),
                 "-w", str(self.dir), "-DD", "-E"], stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)
        deadline = time.monotonic() + timeout
        while not self.pidfile.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"kamailio did not start: {self.log.read_text()[-2000:]}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        self.proc = None
