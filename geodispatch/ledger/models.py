"""The sealed log: the sequencing queue, the Merkle leaves and the signed tree heads."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, ForeignKey, LargeBinary, String, Text, func
from sqlalchemy.orm import Mapped, mapped_column

from geodispatch.db import Base


class LogPending(Base):
    """An event committed but not yet sealed; filled by a trigger on ``incident_events``."""

    __tablename__ = "log_pending"

    event_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("incident_events.id"), primary_key=True)
    queued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class LogLeaf(Base):
    """Leaf ``seq`` (0-based, gap-free) of the Merkle log: ``SHA-256(0x00 || event body)``."""

    __tablename__ = "log_leaves"

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    event_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("incident_events.id"), unique=True)
    leaf_hash: Mapped[bytes] = mapped_column(LargeBinary)
    sealed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class TreeHeadRecord(Base):
    """A signed tree head as the sequencer issued it (also in the witnessed file)."""

    __tablename__ = "tree_heads"

    tree_size: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    root_hash: Mapped[str] = mapped_column(String(64))
    timestamp_ms: Mapped[int] = mapped_column(BigInteger)
    log_id: Mapped[str] = mapped_column(String(64))
    signature: Mapped[str] = mapped_column(Text)
