"""Request bodies of the dispatch API."""

from __future__ import annotations

from pydantic import BaseModel, Field


class AssignBody(BaseModel):
    unit_id: int
    override_reason: str | None = Field(None, max_length=1000)
    lead: bool = False


class StatusBody(BaseModel):
    status: str = Field(..., max_length=20)


class ReasonBody(BaseModel):
    reason: str = Field(..., min_length=1, max_length=1000)


class MergeBody(BaseModel):
    into_id: int | None = None
    into_reference: str | None = None
    reason: str = Field("", max_length=1000)
    duplicate: bool = True


class CloseBody(BaseModel):
    disposition: str = Field(..., min_length=2, max_length=8)
    note: str = Field("", max_length=2000)


class RecommendBody(BaseModel):
    top_n: int | None = Field(None, ge=1, le=50)


class LeadBody(BaseModel):
    unit_id: int
