"""Pydantic schemas of the intake API and service."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field, field_validator, model_validator


def clean_text(v: object) -> object:
    """Text PostgreSQL can store: NUL becomes U+FFFD, lone surrogates become ``?``."""
    if isinstance(v, str):
        return v.replace("\x00", "\ufffd").encode("utf-8", "replace").decode("utf-8")
    return v


class IncidentCreate(BaseModel):
    """A call as the call-taker registers it.

    Anything that identifies the call is enough: a phone number, a description, an address or
    a point. A place that cannot be resolved (an address not in the road data, impossible
    coordinates) still registers the call, with "location unknown" and the typed text kept;
    someone places it on the map later.
    """

    lat: float | None = None
    lng: float | None = None
    address: str | None = Field(
        None, max_length=500, description="As the caller says it: 'вул. Хрещатик, 22, кв. 5', "
        "'750 East Pratt Street', or 'Хрещатик / Прорізна' (an intersection)")
    near_lat: float | None = Field(None, description="Hint for a street-only address: the "
                                   "caller's position, the zone or the map centre")
    near_lng: float | None = None
    category: str | None = Field(None, max_length=48, description="Default: other")
    priority: int | None = Field(None, ge=1, le=4, description="Default: the category's")
    description: str = Field("", max_length=4000)
    caller_phone: str | None = Field(None, max_length=32,
                                     description="E.164, or a national number of phone_region")
    caller_lang: str | None = Field(None, max_length=5)
    sms_opt_out: bool = False
    received_at: datetime | None = None
    idempotency_key: str | None = Field(None, min_length=1, max_length=128)

    @field_validator("address", "category", "description", "caller_phone", "caller_lang",
                     "idempotency_key", mode="before")
    @classmethod
    def _clean(cls, v: object) -> object:
        return clean_text(v)

    @field_validator("received_at")
    @classmethod
    def _aware(cls, v: datetime | None) -> datetime | None:
        if v is not None and v.tzinfo is None:
            raise ValueError("received_at needs a time zone")
        return v

    @model_validator(mode="after")
    def _something(self) -> IncidentCreate:
        if (self.lat is None and self.lng is None and not (self.address or "").strip()
                and not self.description.strip() and not (self.caller_phone or "").strip()):
            raise ValueError("nothing to register: give a phone number, a description, "
                             "an address or a point")
        return self


class PlaceIncident(BaseModel):
    """Put an incident on the map (its place was unknown, or it was wrong)."""

    lat: float = Field(..., ge=-90, le=90)
    lng: float = Field(..., ge=-180, le=180)
    address: str | None = Field(None, max_length=500)
    reason: str = Field("", max_length=1000)

    @field_validator("address", "reason", mode="before")
    @classmethod
    def _clean(cls, v: object) -> object:
        return clean_text(v)


class Reclassify(BaseModel):
    category: str = Field(..., max_length=48)
    reason: str = Field(..., min_length=3, max_length=1000)
    priority: int | None = Field(None, ge=1, le=4)


class NoteCreate(BaseModel):
    """A free-text note on an incident (a remark of the call-taker, dispatcher or supervisor)."""

    text: str = Field(..., min_length=1, max_length=2000)

    _clean = field_validator("text", mode="before")(clean_text)


class IncidentOut(BaseModel):
    """An incident as the API shows it (``caller_phone`` only to the regional operations roles)."""

    id: int
    reference: str
    region: str
    status: str
    category: str
    original_category: str
    priority: int
    lat: float | None
    lng: float | None
    location: dict[str, Any] | None
    location_unknown: bool = False
    h3: str | None
    address: str | None
    address_resolved: str | None = None
    location_precision: str | None = None
    location_method: str | None = None
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
    warnings: list[str] = Field(default_factory=list)
    assignments: list[dict[str, Any]] = Field(default_factory=list)
