"""The SIP edge: render the project's Kamailio configuration and run Kamailio on its own ports.

Kamailio (Debian ``kamailio`` + ``kamailio-utils-modules`` for ``http_client``) proxies each
call to the call-takers' phones and reports its signalling to ``POST /api/calls/sip/batch``
(:mod:`geodispatch.calls.sip`) without ever holding a call up for it: the reports queue in
Kamailio's memory and reporter processes post them in batches, keeping and retrying a batch
while the project is unreachable. Everything it needs lives in one directory of its own
(config, pid file, runtime dir, log), so it never touches a
system Kamailio.
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
    report_url: str  # http://host:port/api/calls/sip (batches go to .../sip/batch)
    token: str = ""
    children: int = 4
    reporters: int = 4  # processes posting the queued reports (one queue each)
    batch: int = 100  # most reports in one POST
    retry_ms: int = 200  # pause before a refused or undelivered batch is posted again


def render(cfg: EdgeConfig) -> str:
    """The configuration text for ``cfg``."""
    if any(c in cfg.token for c in '"\r\n\\'):
        raise ValueError("the phone-system token cannot hold quotes, backslashes or newlines")
    if not 1 <= cfg.reporters <= 32 or not 1 <= cfg.batch <= 1000 or cfg.retry_ms < 1:
        raise ValueError("reporters 1..32, batch 1..1000, retry_ms >= 1")
    header = f"\\r\\nX-Phone-System-Token: {cfg.token}" if cfg.token else ""
    n = cfg.reporters
    queues = "\n".join(
        ['modparam("mqueue", "mqueue", "name=ring")']
        + [f'modparam("mqueue", "mqueue", "name=rep{i}")' for i in range(n)])
    timers = "\n".join(
        f'modparam("rtimer", "timer", "name={q};interval=5000u;mode=1")\n'
        f'modparam("rtimer", "exec", "timer={q};route=REPORTER_{r}")'
        for q, r in [("ring", "RING")] + [(f"rep{i}", str(i)) for i in range(n)])
    enqueue = "\n".join(
        f'    {"if" if i == 0 else "} else if"} ($var(shard) == {i}) {{\n'
        f'        mq_add("rep{i}", "r", "$var(q)");' for i in range(n)) + "\n    }"
    reporters = "\n\n".join(
        [REPORTER.replace("@I@", "RING").replace("@Q@", "ring").replace("@WAIT@", "")
         .replace("@BUSY@", "$shv(ring_busy) = 1;").replace("@IDLE@", "$shv(ring_busy) = 0;")]
        + [REPORTER.replace("@I@", str(i)).replace("@Q@", f"rep{i}").replace("@WAIT@", WAIT)
           .replace("@BUSY@", "").replace("@IDLE@", "") for i in range(n)])
    text = TEMPLATE.read_text()
    for key, value in {"QUEUES": queues + "\n" + timers, "ENQUEUE": enqueue,
                       "REPORTER_ROUTES": reporters, "SIP_ADDR": cfg.sip_addr,
                       "SIP_PORT": str(cfg.sip_port), "OPERATOR": cfg.operator,
                       "NOANSWER": cfg.noanswer, "REPORT_URL": cfg.report_url,
                       "BATCH_URL": cfg.report_url.rstrip("/") + "/batch",
                       "TOKEN_HEADER": header, "CHILDREN": str(cfg.children),
                       "REPORTERS": str(n), "BATCH": str(cfg.batch),
                       "BATCH_BYTES": str(BATCH_BYTES), "PV_BUFFER": str(BATCH_BYTES * 2),
                       "RETRY_MS": str(cfg.retry_ms), "RETRY_US": str(cfg.retry_ms * 1000),
                       "MODULES": MODULES}.items():
        text = text.replace(f"@{key}@", value)
    return text


#: A batch stops growing past this many bytes (a PIDF-LO body is a few kB).
BATCH_BYTES = 60000

# One reporter: post the queued reports of its queue (rep@I@), or the batch it holds because
# the last post failed; a failure (the project down, 5xx, 401/403 of a wrong token) is logged
# and retried after a pause, never dropped. Only a batch the project calls unusable is let go.
REPORTER = """route[REPORTER_@I@] {
    if ($var(held) != 1) {
@WAIT@        @BUSY@
        $var(batch) = "";
        $var(n) = 0;
        while ($var(n) < @BATCH@ && $(var(batch){s.len}) < @BATCH_BYTES@ && mq_fetch("@Q@")) {
            $var(batch) = $var(batch) + $mqv(@Q@) + "\\n";
            $var(n) = $var(n) + 1;
        }
        if ($var(n) == 0) {
            @IDLE@
            return;
        }
    }
    $var(code) = http_client_query("@BATCH_URL@", "$var(batch)",
                                   "Content-Type: text/plain@TOKEN_HEADER@", "$var(res)");
    if ($var(code) == 200) {
        $var(held) = 0;
        @IDLE@
    } else if ($var(code) == 400 || $var(code) == 413 || $var(code) == 422) {
        # the project says this batch can never be used: logged here, not retried for ever
        $var(held) = 0;
        @IDLE@
        xlog("L_ERR", "geodispatch: batch refused ($var(code)): $var(batch)\\n");
    } else {
        $var(held) = 1;
        xlog("L_ERR", "geodispatch: reports not delivered ($var(code)), kept; retry\\n");
        usleep("@RETRY_US@");
    }
}"""

# The other lanes wait while the ring lane has rings queued or in flight (its reporter marks
# itself busy before it takes any): a call's later reports never overtake its first ring.
WAIT = """        if (mq_size("ring") > 0 || $shv(ring_busy) == 1) {
            return;
        }
"""


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
