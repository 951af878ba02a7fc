"""The architecture checks `make test` runs: the import-linter contracts of pyproject.toml
(layers) and mypy --strict over the package (typed seams). Each reports what it found."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _run(tool: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([str(BIN / tool), *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)


def test_import_contracts_are_kept() -> None:
    """Domain services know no HTTP, the standalone verifier needs no database, base modules
    import no domain, routing and geocoding stand alone (see ``[tool.importlinter]``)."""
    r = _run("lint-imports")
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    assert "0 broken" in r.stdout


def test_the_package_is_mypy_strict_clean() -> None:
    r = _run("mypy")
    assert r.returncode == 0, r.stdout[-6000:] + r.stderr[-2000:]
    assert "Success: no issues found" in r.stdout
