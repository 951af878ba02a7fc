"""Pydantic schemas of the intake API and service."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field, field_validator, model_validator


class IncidentCreate(BaseModel):
    """A call as the call-taker registers it: a point (``lat``/``lng``) or an ``address``."""

    lat: float | None = Field(None, ge=-90, le=90)
    lng: float | None = Field(None, ge=-180, le=180)
    address: str | None = Field(None, max_length=500,
                                description="Street, or 'street A & street B' (an intersection)")
    category: str = Field(..., max_length=48)
    priority: int | None = Field(None, ge=1, le=4, description="Default: the category's")
    description: str = Field("", max_length=4000)
    caller_phone: str | None = Field(None, max_length=32, description="E.164, e.g. +380501234567")
    caller_lang: str | None = Field(None, max_length=5)
    sms_opt_out: bool = False
    received_at: datetime | None = None
    idempotency_key: str | None = Field(None, min_length=1, max_length=128)

    @field_validator("received_at")
    @classmethod
    def _aware(cls, v: datetime | None) -> datetime | None:
        if v is not None and v.tzinfo is None:
            raise ValueError("received_at needs a time zone")
        return v

    @model_validator(mode="after")
    def _where(self) -> IncidentCreate:
        if (self.lat is None) != (self.lng is None):
            raise ValueError("give both lat and lng")
        if self.lat is None and not (self.address or "").strip():
            raise ValueError("give a location (lat/lng) or an address")
        return self


class Reclassify(BaseModel):
    category: str = Field(..., max_length=48)
    reason: str = Field(..., min_length=3, max_length=1000)
    priority: int | None = Field(None, ge=1, le=4)


class IncidentOut(BaseModel):
    """An incident as the API shows it (``caller_phone`` only to the regional operations roles)."""

    id: int
    reference: str
    region: str
    status: str
    category: str
    original_category: str
    priority: int
    lat: float
    lng: float
    location: dict[str, Any]
    h3: str
    address: str | None
    description: str
    received_at: datetime
    registered_at: datetime | None
    sector_id: int | None
    district_id: int | None
    merged_into_id: int | None
    disposition: str | None
    closed_at: datetime | None
    caller_phone: str | None = None
    caller_lang: str
    created: bool | None = None
    assignments: list[dict[str, Any]] = Field(default_factory=list)
