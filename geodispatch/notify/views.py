"""HTTP endpoints of caller notifications: opt-out. (An incident's SMS history is one of the
incident's own endpoints, ``GET /api/incidents/{id}/sms``.)"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from geodispatch.api.deps import SessionDep, require_roles
from geodispatch.api.security import ADMIN, CALL_TAKER, DISPATCHER, SUPERVISOR, Principal
from geodispatch.notify.outbox import opt_out

router = APIRouter(tags=["notify"])

Operators = Annotated[Principal, Depends(require_roles(CALL_TAKER, DISPATCHER, SUPERVISOR,
                                                       ADMIN))]


class OptOutBody(BaseModel):
    phone: str = Field(..., max_length=32)


@router.post("/api/sms/opt-out", status_code=204, summary="A caller asks for no more SMS")
def post_opt_out(body: OptOutBody, principal: Operators, session: SessionDep) -> None:
    opt_out(session=session, phone=body.phone)
