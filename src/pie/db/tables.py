"""The whole relational schema in one place (migrations are checked against it)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar
from uuid import UUID

from sqlalchemy import (
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    text,
)
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
        datetime | None: UtcDateTime(),
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


class Job(Base):
    """A durable job: the queue row and the record clients poll.

    Dispatch bookkeeping lives beside the public fields: ``attempt`` is bumped by every
    claim and fences every write a worker makes; ``leased_until`` is set while a worker
    holds the job (NULL when nobody does, e.g. while a Lambda runs); ``next_attempt_at``
    delays retries; ``deadline_at`` is set when the job starts.
    """

    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    job_type: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    model_id: Mapped[str] = mapped_column(String(128))
    model_version: Mapped[str] = mapped_column(String(64))
    handler: Mapped[dict[str, Any]] = mapped_column()
    handler_type: Mapped[str] = mapped_column(String(16))
    input: Mapped[Any] = mapped_column(Json)
    output: Mapped[Any] = mapped_column(Json, nullable=True)
    error: Mapped[dict[str, Any] | None] = mapped_column()
    warnings: Mapped[list[Any]] = mapped_column(default=list)
    context: Mapped[dict[str, Any]] = mapped_column(default=dict)
    triggered_events: Mapped[list[Any]] = mapped_column(default=list)
    assignment_id: Mapped[str | None] = mapped_column(String(36))
    client_id: Mapped[str | None] = mapped_column(String(128))
    domain_id: Mapped[str | None] = mapped_column(String(128))
    service_id: Mapped[str | None] = mapped_column(String(128))
    subscription_id: Mapped[str | None] = mapped_column(String(36))
    parent_job_id: Mapped[str | None] = mapped_column(String(36))
    depth: Mapped[int] = mapped_column(Integer(), default=0)
    created_by: Mapped[str] = mapped_column(String(256))
    attempt: Mapped[int] = mapped_column(Integer(), default=0)
    dispatch_failures: Mapped[int] = mapped_column(Integer(), default=0)
    next_attempt_at: Mapped[datetime] = mapped_column()
    leased_until: Mapped[datetime | None] = mapped_column()
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    deadline_at: Mapped[datetime | None] = mapped_column()
    external_ref: Mapped[str | None] = mapped_column(String(2048))
    created_at: Mapped[datetime] = mapped_column()
    started_at: Mapped[datetime | None] = mapped_column()
    completed_at: Mapped[datetime | None] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column()

    __table_args__ = (
        # The claim: due pending jobs in order. Partial, so a large finished backlog costs nothing.
        Index(
            "ix_jobs_due",
            "next_attempt_at",
            postgresql_where=text("status = 'pending' AND leased_until IS NULL"),
            sqlite_where=text("status = 'pending' AND leased_until IS NULL"),
        ),
        Index(
            "ix_jobs_leased_until",
            "leased_until",
            postgresql_where=text("leased_until IS NOT NULL"),
            sqlite_where=text("leased_until IS NOT NULL"),
        ),
        Index(
            "ix_jobs_deadline_at",
            "deadline_at",
            postgresql_where=text("status = 'started'"),
            sqlite_where=text("status = 'started'"),
        ),
        Index("ix_jobs_client_id_created_at_id", "client_id", "created_at", "id"),
        # A caller's own jobs (visibility): only jobs without a tenant, newest first.
        Index(
            "ix_jobs_created_by_created_at_id_no_client",
            "created_by",
            "created_at",
            "id",
            postgresql_where=text("client_id IS NULL"),
            sqlite_where=text("client_id IS NULL"),
        ),
        Index("ix_jobs_created_at_id", "created_at", "id"),
        Index("ix_jobs_model_id_model_version", "model_id", "model_version"),
    )


class IdempotencyKey(Base):
    """A remembered 2xx answer to a job-starting request (API.md §0, 24 h)."""

    __tablename__ = "idempotency_keys"

    scope: Mapped[str] = mapped_column(String(64), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer())
    response: Mapped[dict[str, Any]] = mapped_column()
    created_at: Mapped[datetime] = mapped_column()
    expires_at: Mapped[datetime] = mapped_column(index=True)


class Service(Base):
    """A tenant's service (e.g. one ferry departure) with its resolved features."""

    __tablename__ = "services"

    client_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    domain_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    service_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    status: Mapped[str] = mapped_column(String(16))
    departure_datetime: Mapped[datetime | None] = mapped_column()
    provided_features: Mapped[dict[str, Any]] = mapped_column()
    resolved_features: Mapped[dict[str, Any]] = mapped_column()
    init_job_id: Mapped[str | None] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column()

    __table_args__ = (
        ForeignKeyConstraint(
            ["client_id", "domain_id"],
            ["domains.client_id", "domains.domain_id"],
            ondelete="CASCADE",
        ),
        Index(
            "ix_services_client_id_domain_id_created_at_service_id",
            "client_id",
            "domain_id",
            "created_at",
            "service_id",
        ),
    )


class Assignment(Base):
    """One revision of an assignment key; at most one per key is `active`.

    ``scope`` is the service id, or ``""`` for the domain scope, so that the partial
    unique index below is NULL-safe on both databases.
    """

    __tablename__ = "assignments"

    assignment_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(128))
    domain_id: Mapped[str] = mapped_column(String(128))
    scope: Mapped[str] = mapped_column(String(128))
    service_id: Mapped[str | None] = mapped_column(String(128))
    assignment_key: Mapped[str] = mapped_column(String(128))
    model_id: Mapped[str] = mapped_column(String(128))
    model_version: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    role: Mapped[str | None] = mapped_column(String(128))
    settings: Mapped[dict[str, Any]] = mapped_column()
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata")
    revision: Mapped[int] = mapped_column(Integer())
    created_by: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column()

    __table_args__ = (
        ForeignKeyConstraint(
            ["client_id", "domain_id"],
            ["domains.client_id", "domains.domain_id"],
            ondelete="CASCADE",
        ),
        UniqueConstraint("client_id", "domain_id", "scope", "assignment_key", "revision"),
        Index(
            "uq_assignments_one_active",
            "client_id",
            "domain_id",
            "scope",
            "assignment_key",
            unique=True,
            postgresql_where=text("status = 'active'"),
            sqlite_where=text("status = 'active'"),
        ),
        Index(
            "ix_assignments_client_id_domain_id_scope_created_at",
            "client_id",
            "domain_id",
            "scope",
            "created_at",
            "assignment_id",
        ),
    )


class Subscription(Base):
    """An event subscription: when ``source`` does ``trigger_event``, run ``target``.

    ``fingerprint`` hashes what the subscription depends on (contracts, else handlers);
    ``dedupe_key`` makes `subscribe: true` idempotent per (model, input, context).
    """

    __tablename__ = "subscriptions"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    source_model_id: Mapped[str] = mapped_column(
        String(128), ForeignKey("models.id", ondelete="CASCADE")
    )
    trigger_event: Mapped[str] = mapped_column(String(32))
    target_model_id: Mapped[str] = mapped_column(
        String(128), ForeignKey("models.id", ondelete="CASCADE")
    )
    target_action: Mapped[str] = mapped_column(String(16))
    input_source: Mapped[str] = mapped_column(String(16))
    input: Mapped[dict[str, Any] | None] = mapped_column()
    label: Mapped[str | None] = mapped_column(String(256))
    status: Mapped[str] = mapped_column(String(16))
    context: Mapped[dict[str, Any] | None] = mapped_column()
    client_id: Mapped[str | None] = mapped_column(String(128))
    created_by: Mapped[str] = mapped_column(String(256))
    fingerprint: Mapped[str] = mapped_column(String(64))
    dedupe_key: Mapped[str | None] = mapped_column(String(64), unique=True)
    warnings: Mapped[list[Any]] = mapped_column(default=list)
    created_at: Mapped[datetime] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column()

    __table_args__ = (
        Index("ix_subscriptions_source_event_status", "source_model_id", "trigger_event", "status"),
        Index("ix_subscriptions_target_model_id", "target_model_id"),
        Index(
            "ix_subscriptions_source_model_id_created_at_id", "source_model_id", "created_at", "id"
        ),
    )
