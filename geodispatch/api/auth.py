"""Login (OAuth2 password flow) issuing JWTs, and the caller's own profile."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.security import OAuth2PasswordRequestForm
from pydantic import BaseModel
from sqlalchemy import select

from geodispatch.api.deps import PrincipalDep, SessionDep, SettingsDep
from geodispatch.api.security import Principal, issue_token, verify_password
from geodispatch.errors import Unauthenticated
from geodispatch.users.models import User

router = APIRouter(prefix="/api/auth", tags=["auth"])


class Token(BaseModel):
    access_token: str
    token_type: str = "bearer"
    role: str
    region: str | None


@router.post("/token", response_model=Token)
def login(
    form: Annotated[OAuth2PasswordRequestForm, Depends()], session: SessionDep, settings: SettingsDep
) -> Token:
    user = session.scalar(select(User).where(User.username == form.username, User.active))
    if user is None or not verify_password(form.password, user.password_hash):
        raise Unauthenticated("wrong username or password")
    p = Principal(username=user.username, role=user.role, region=user.region)
    return Token(access_token=issue_token(p, settings), role=p.role, region=p.region)


@router.get("/me")
def me(principal: PrincipalDep) -> dict[str, str | None]:
    return {"username": principal.username, "role": principal.role, "region": principal.region}
