"""The national centre's side of federation: the registry of regional centres, the tree heads
it witnessed of each regional log, the regional events it verified, the notifications it took
(replay guard) and every document it refused, with the reason."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, ForeignKey, Integer, LargeBinary, String, Text, func
from sqlalchemy.orm import Mapped, mapped_column

from geodispatch.db import Base


class FederationCentre(Base):
    """A regional centre: its code, its EIDO feed URL and its log's Ed25519 public key."""

    __tablename__ = "federation_centres"

    code: Mapped[str] = mapped_column(String(16), primary_key=True)
    url: Mapped[str | None] = mapped_column(Text)
    public_key: Mapped[str] = mapped_column(Text)
    log_id: Mapped[str] = mapped_column(String(64), unique=True)
    added_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class FederationHead(Base):
    """A signed tree head of a regional log that this centre witnessed (append-only)."""

    __tablename__ = "federation_heads"

    centre_code: Mapped[str] = mapped_column(
        String(16), ForeignKey("federation_centres.code"), primary_key=True)
    tree_size: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    root_hash: Mapped[str] = mapped_column(String(64))
    timestamp_ms: Mapped[int] = mapped_column(BigInteger)
    signature: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True),
                                                  server_default=func.now())


class FederationEvent(Base):
    """A regional event verified against a witnessed head: leaf ``seq`` of the centre's log."""

    __tablename__ = "federation_events"

    centre_code: Mapped[str] = mapped_column(
        String(16), ForeignKey("federation_centres.code"), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    leaf_hash: Mapped[bytes] = mapped_column(LargeBinary)
    incident_ref: Mapped[str] = mapped_column(String(32), index=True)
    incident_seq: Mapped[int] = mapped_column(Integer)
    national_event_id: Mapped[int | None] = mapped_column(BigInteger)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True),
                                                  server_default=func.now())


class FederationNotification(Base):
    """A signed notification already taken (its id may not come again: replay)."""

    __tablename__ = "federation_notifications"

    notification_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    centre_code: Mapped[str] = mapped_column(String(16), ForeignKey("federation_centres.code"))
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True),
                                                  server_default=func.now())


class FederationRefusal(Base):
    """A document refused, kept whole with the reason."""

    __tablename__ = "federation_refusals"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True),
                                                  server_default=func.now())
    centre_code: Mapped[str | None] = mapped_column(String(16))
    via: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str] = mapped_column(Text)
    document: Mapped[str] = mapped_column(Text)
