"""HTTP endpoints of federation: EIDO export for the national centre, and its import.

``GET /api/federation/eido?region=&since=`` (list), ``GET /api/federation/eido/{reference}``,
``POST /api/federation/eido`` (admin of the receiving centre; one EIDO or a list; 422 when a hash
does not verify, nothing stored). Regional users export their own region only.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends

from geodispatch.api.deps import SessionDep, SettingsDep, require_roles
from geodispatch.api.security import ADMIN, ANALYST, NATIONAL, SUPERVISOR, Principal
from geodispatch.errors import NotFound
from geodispatch.federation.service import export_incidents, import_documents

router = APIRouter(prefix="/api/federation", tags=["federation"])

Exporter = Annotated[Principal, Depends(require_roles(SUPERVISOR, ANALYST, ADMIN, NATIONAL))]
Admin = Annotated[Principal, Depends(require_roles(ADMIN))]



@router.get("/eido", summary="Incidents with their event logs as NENA EIDO JSON")
def export_list(
    session: SessionDep,
    principal: Exporter,
    settings: SettingsDep,
    region: str | None = None,
    since: datetime | None = None,
) -> list[dict[str, Any]]:
    return export_incidents(
        session=session, settings=settings, region=principal.scope(region), since=since
    )


@router.get("/eido/{reference}", summary="One incident as NENA EIDO JSON")
def export_one(
    session: SessionDep, principal: Exporter, settings: SettingsDep, reference: str
) -> dict[str, Any]:
    docs = export_incidents(
        session=session, settings=settings, region=principal.scope(None), references=[reference]
    )
    if not docs:
        raise NotFound(f"incident {reference}")
    return docs[0]


@router.post("/eido", summary="Verify and import EIDO JSON from a regional centre (admin)")
def import_docs(
    session: SessionDep,
    settings: SettingsDep,
    principal: Admin,
    body: Annotated[dict[str, Any] | list[Any], Body()],
) -> list[dict[str, Any]]:
    docs = body if isinstance(body, list) else [body]
    results = import_documents(session=session, docs=docs, settings=settings)
    return [r.as_dict() for r in results]
