"""``geodispatch log witness-serve``: a small HTTP witness for other centres' logs.

It holds, per log id, an append-only :class:`~geodispatch.ledger.witness.FileWitness` and accepts
a new head only when it is signed by that log's known public key and consistently extends the
last head it accepted. The protocol is described in :mod:`geodispatch.ledger.witness`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from fastapi import Body, FastAPI, HTTPException
from fastapi.responses import JSONResponse

from geodispatch.ledger.signing import TreeHead, log_id
from geodispatch.ledger.witness import FileWitness, WitnessRefused


def create_witness_app(directory: Path, keys: list[Ed25519PublicKey]) -> FastAPI:
    """The witness app for the logs of ``keys``, storing heads under ``directory``."""
    witnesses = {log_id(k): FileWitness(directory / f"{log_id(k)}.jsonl", k) for k in keys}
    app = FastAPI(title="geodispatch log witness")

    def _witness(lid: str) -> FileWitness:
        w = witnesses.get(lid)
        if w is None:
            raise HTTPException(404, f"this witness does not know log {lid[:64]!r}")
        return w

    @app.get("/v1/witness/{lid}/head")
    def head(lid: str) -> dict[str, Any]:
        latest = _witness(lid).latest()
        return {"head": None if latest is None else latest.as_dict()}

    @app.post("/v1/witness/{lid}/head", response_model=None)
    def submit(lid: str, payload: Any = Body(...)) -> dict[str, Any] | JSONResponse:
        w = _witness(lid)
        if not isinstance(payload, dict):
            raise HTTPException(400, "expected {\"head\": ..., \"proof\": [...]}")
        try:
            th = TreeHead.from_dict(payload.get("head"))
            raw = payload.get("proof", [])
            if not isinstance(raw, list) or not all(isinstance(p, str) for p in raw):
                raise ValueError("proof must be a list of hex strings")
            proof = [bytes.fromhex(p) for p in raw]
        except ValueError as exc:
            raise HTTPException(400, f"malformed tree head: {exc}") from exc
        if th.log_id != lid:
            raise HTTPException(400, "the head names another log")
        try:
            w.submit(th, proof)
        except WitnessRefused as exc:
            if exc.tree_size is None:
                raise HTTPException(400, str(exc)) from exc
            return JSONResponse({"detail": str(exc), "tree_size": exc.tree_size}, status_code=409)
        return {"accepted": True, "tree_size": th.tree_size}

    return app
