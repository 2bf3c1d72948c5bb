"""The whole relational schema in one place (migrations are checked against it)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar
from uuid import UUID

from sqlalchemy import ForeignKey, Index, Integer, MetaData, String, Text, UniqueConstraint, Uuid
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from pie.core.clock import utcnow
from pie.db.types import Json, UtcDateTime

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UtcDateTime(),
        dict[str, Any]: Json,
        list[Any]: Json,
        dict[str, Any] | None: Json,
        list[Any] | None: Json,
    }


class Timestamped:
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Client(Timestamped, Base):
    """A tenant. ``client_id`` is the public key; ``client_uuid`` a stable opaque id."""

    __tablename__ = "clients"

    client_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    client_uuid: Mapped[UUID] = mapped_column(Uuid(), unique=True)
    name: Mapped[str] = mapped_column(String(256))
    status: Mapped[str] = mapped_column(String(16), default="active")

    __table_args__ = (Index("ix_clients_created_at_client_id", "created_at", "client_id"),)


class Domain(Timestamped, Base):
    """A tenant's domain; ``features`` is the whole ordered list of feature definitions."""

    __tablename__ = "domains"

    client_id: Mapped[str] = mapped_column(
        String(128), ForeignKey("clients.client_id", ondelete="CASCADE"), primary_key=True
    )
    domain_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), default="active")
    features: Mapped[list[Any]] = mapped_column(default=list)

    __table_args__ = (
        Index("ix_domains_client_id_created_at_domain_id", "client_id", "created_at", "domain_id"),
    )


class Model(Timestamped, Base):
    """A registered model: the *current* definition; versions snapshot it."""

    __tablename__ = "models"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    name: Mapped[str] = mapped_column(String(256))
    description: Mapped[str] = mapped_column(Text())
    handlers: Mapped[dict[str, Any]] = mapped_column()
    handler_contracts: Mapped[dict[str, Any] | None] = mapped_column()
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)
    status: Mapped[str] = mapped_column(String(16), default="pending")

    __table_args__ = (
        Index("ix_models_created_at_id", "created_at", "id"),
        Index("ix_models_name", "name"),
    )


class ModelVersion(Timestamped, Base):
    """A version: a frozen snapshot of handlers and contracts, plus its own lifecycle.

    ``seq`` numbers a model's versions 1, 2, … in creation order (under the model's row
    lock); it orders "newest" without trusting clocks and counts versions for auto names.
    """

    __tablename__ = "model_versions"

    model_id: Mapped[str] = mapped_column(
        String(128), ForeignKey("models.id", ondelete="CASCADE"), primary_key=True
    )
    version: Mapped[str] = mapped_column(String(64), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer())
    description: Mapped[str] = mapped_column(Text(), default="")
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    handlers: Mapped[dict[str, Any]] = mapped_column()
    handler_contracts: Mapped[dict[str, Any] | None] = mapped_column()
    features: Mapped[list[Any] | None] = mapped_column()
    training_output: Mapped[dict[str, Any] | None] = mapped_column()

    __table_args__ = (
        UniqueConstraint("model_id", "seq"),
        Index("ix_model_versions_model_id_created_at_version", "model_id", "created_at", "version"),
    )
