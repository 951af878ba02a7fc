"""The ingest supervisor: run N worker processes and restart any that dies.

``geodispatch ingest --workers N`` runs this in the foreground. Each worker is a child process
(``geodispatch ingest --worker-process --index i``): N processes because of the GIL, each with
its own persistent MQTT session in the shared-subscription group. Nothing a message contains
should end a worker (see ``worker.py``); this is the last line for what does anyway (a bug, an
out-of-memory kill, ``kill -9``). A child that exits while the supervisor is not stopping is
logged at ERROR and restarted after a back-off that grows while it keeps dying young (1 s up to
30 s) and resets once it has run for a minute. Children get ``PR_SET_PDEATHSIG`` so they never
outlive a supervisor that is itself killed.

Scheduled jobs that belong to ingest (creating position partitions ahead of time, see
``geodispatch.tracking.scheduled``) run in the supervisor's own thread, so they run whether or
not the API is up.
"""

from __future__ import annotations

import ctypes
import logging
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

MIN_BACKOFF_S = 1.0
MAX_BACKOFF_S = 30.0
HEALTHY_AFTER_S = 60.0
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:
        pass


@dataclass
class Child:
    """One supervised process and its restart bookkeeping."""

    name: str
    command: list[str]
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restarts: int = 0
    backoff_s: float = MIN_BACKOFF_S
    due_at: float = 0.0
    exit_codes: list[int] = field(default_factory=list)


class Supervisor:
    """Keep every command running until :meth:`run`'s ``stop`` is set (see the module doc)."""

    def __init__(self, commands: Sequence[tuple[str, list[str]]], *,
                 jobs: Sequence[Callable[[threading.Event], None]] = (),
                 poll_s: float = 0.2) -> None:
        self.children = [Child(name, list(cmd)) for name, cmd in commands]
        self.jobs = list(jobs)
        self.poll_s = poll_s

    def _start(self, child: Child) -> None:
        child.proc = subprocess.Popen(child.command, preexec_fn=_die_with_parent)  # noqa: PLW1509
        child.started_at = time.monotonic()
        log.info("started %s (pid %d)", child.name, child.proc.pid)

    def _check(self, child: Child, now: float) -> None:
        proc = child.proc
        if proc is None:
            if now >= child.due_at:
                self._start(child)
            return
        code = proc.poll()
        if code is None:
            if now - child.started_at > HEALTHY_AFTER_S:
                child.backoff_s = MIN_BACKOFF_S
            return
        child.exit_codes.append(code)
        child.restarts += 1
        lived = now - child.started_at
        if lived < HEALTHY_AFTER_S:
            child.backoff_s = min(child.backoff_s * 2, MAX_BACKOFF_S) if child.restarts > 1 \
                else MIN_BACKOFF_S
        else:
            child.backoff_s = MIN_BACKOFF_S
        log.error("%s (pid %d) exited with %s after %.1f s; restart %d in %.1f s", child.name,
                  proc.pid, code, lived, child.restarts, child.backoff_s)
        child.proc = None
        child.due_at = now + child.backoff_s

    def run(self, stop: threading.Event) -> int:
        """Supervise until ``stop``; then SIGTERM the children (SIGKILL after 30 s)."""
        threads = [threading.Thread(target=job, args=(stop,), name=f"job-{i}", daemon=True)
                   for i, job in enumerate(self.jobs)]
        for t in threads:
            t.start()
        try:
            while not stop.is_set():
                now = time.monotonic()
                for child in self.children:
                    self._check(child, now)
                stop.wait(self.poll_s)
        finally:
            self._terminate()
            for t in threads:
                t.join(5.0)
        return 0

    def _terminate(self) -> None:
        live = [c.proc for c in self.children if c.proc is not None and c.proc.poll() is None]
        for proc in live:
            proc.terminate()
        deadline = time.monotonic() + 30.0
        for proc in live:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error("pid %d did not stop in 30 s; killing it", proc.pid)
                proc.kill()
                proc.wait()


def worker_commands(n: int, *, group: str | None, client_id: str | None,
                    stats_file: str | None) -> list[tuple[str, list[str]]]:
    """The child command lines of ``geodispatch ingest --workers n``."""
    base = [sys.executable, "-m", "geodispatch.cli", "ingest", "--worker-process"]
    out = []
    for i in range(n):
        cmd = [*base, "--index", str(i)]
        if group:
            cmd += ["--group", group]
        if client_id:
            cmd += ["--client-id", client_id if n == 1 else f"{client_id}-{i}"]
        if stats_file:
            cmd += ["--stats-file", stats_file if n == 1 else f"{stats_file}.{i}"]
        out.append((f"ingest worker {i}", cmd))
    return out
