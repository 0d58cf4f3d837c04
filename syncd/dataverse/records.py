"""Records owned by a user: the data a stub user holds until it is reassigned (R20).

Data import creates stub users as owners of the records it brings in; an administrator later
moves those records to a real user (`syncd stub reassign`). One table stands for every entity
(account, contact, ...): what matters here is who owns a record, not what it holds.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Index, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from syncd.dataverse.schema import Base, utcnow


class OwnedRecord(Base):
    __tablename__ = "owned_record"
    __table_args__ = (Index("ix_owned_record_owner", "environment_id", "ownerid"),)

    recordid: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    environment_id: Mapped[int] = mapped_column(ForeignKey("environment.id", ondelete="CASCADE"))
    entity: Mapped[str] = mapped_column(String(100))  # logical name of the entity: account, contact, ...
    name: Mapped[str | None] = mapped_column(String(400))
    ownerid: Mapped[uuid.UUID] = mapped_column(ForeignKey("systemuser.systemuserid"))
    createdon: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    modifiedon: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
