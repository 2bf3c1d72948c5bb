"""Typed configuration: the only place that reads the environment.

Every field is a ``PIE_<NAME>`` environment variable (flat names, as API.md spells
``PIE_MAX_BODY_BYTES``); ``docs/configuration.md`` is generated from this model and a test
keeps the two in sync.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url

LOCAL_ISSUER = "pie-local"
CALLBACK_ISSUER = "pie"
CALLBACK_AUDIENCE = "pie-callback"


class Settings(BaseSettings):
    """PIE settings, built once by the CLI (or a test) and passed down."""

    model_config = SettingsConfigDict(env_prefix="PIE_", extra="forbid", frozen=True)

    # -- storage --------------------------------------------------------------------------
    data_dir: Path = Field(
        Path(".pie"),
        description="Directory for the embedded SQLite database and generated secrets.",
    )
    database_url: str | None = Field(
        None,
        description=(
            "SQLAlchemy URL. `postgresql://…` uses asyncpg, `sqlite:///…` uses aiosqlite. "
            "Default: SQLite file `pie.db` in the data directory."
        ),
    )
    database_pool_size: int = Field(
        10, ge=1, le=200, description="Connections per process (PostgreSQL; SQLite readers)."
    )
    database_pool_timeout: float = Field(
        10.0, gt=0, description="Seconds to wait for a pooled connection before failing."
    )
    sqlite_synchronous: Literal["NORMAL", "FULL"] = Field(
        "FULL",
        description=(
            "SQLite `synchronous` pragma in WAL mode. FULL survives power loss (one fsync per "
            "commit); NORMAL survives a process crash only."
        ),
    )
    database_statement_timeout_seconds: float = Field(
        30.0,
        ge=0,
        description=(
            "PostgreSQL `statement_timeout` and `idle_in_transaction_session_timeout` of "
            "PIE's connections (0 = none; `pie db upgrade` always runs without)."
        ),
    )
    sqlite_busy_timeout_ms: int = Field(
        5000, ge=0, description="How long SQLite waits for another process's write lock."
    )

    # -- auth -----------------------------------------------------------------------------
    auth_mode: Literal["local", "jwks"] = Field(
        "local",
        description=(
            "`local`: HS256 tokens signed with a secret in the data directory (`pie token`). "
            "`jwks`: Cognito-style RS256 tokens verified against `PIE_JWKS_URL`."
        ),
    )
    local_secret: SecretStr | None = Field(
        None,
        description=(
            "HS256 secret for local mode. Default: generated on first use in "
            "`<data_dir>/local-secret` (mode 0600)."
        ),
    )
    jwks_url: str | None = Field(None, description="JWKS document URL (required in jwks mode).")
    issuer: str | None = Field(
        None,
        description=(
            "Expected `iss` claim (required in jwks mode; `pie-local` in local mode when unset)."
        ),
    )
    audience: str | None = Field(
        None, description="Expected `aud` claim; not checked when unset (Cognito access tokens)."
    )
    leeway_seconds: int = Field(
        30, ge=0, le=600, description="Clock skew allowed on `exp`, `nbf` and `iat`."
    )
    jwks_cache_seconds: int = Field(
        3600, ge=1, description="How long a fetched JWKS is trusted before a refresh."
    )
    jwks_min_refresh_seconds: int = Field(
        30,
        ge=0,
        description="Minimum gap between JWKS refetches triggered by unknown `kid`s.",
    )
    token_cache_size: int = Field(
        10000, ge=0, description="Verified tokens kept in memory (0 disables the cache)."
    )

    # -- HTTP -----------------------------------------------------------------------------
    host: str = Field("127.0.0.1", description="`pie serve` bind address.")
    port: int = Field(8000, ge=1, le=65535, description="`pie serve` port.")
    max_body_bytes: int = Field(
        1024 * 1024, ge=1024, description="Largest request body accepted (413 above it)."
    )
    max_header_bytes: int = Field(
        32 * 1024,
        ge=4096,
        description="Largest total size of a request's headers (431 above it).",
    )
    request_timeout_seconds: float = Field(
        30.0,
        gt=0,
        description=(
            "A request not answered in this time gets 503 and its work is cancelled (its "
            "transaction rolls back); a long-poll's `wait` is added to it."
        ),
    )
    max_concurrent_requests: int = Field(
        1000,
        ge=1,
        description="Requests handled at once per process; more get 503 with `Retry-After`.",
    )
    metrics: Literal["off", "public", "admin"] = Field(
        "admin",
        description="Exposure of `GET /metrics`: not served, public, or admin token only.",
    )
    public_url: str | None = Field(
        None,
        description="Externally reachable base URL of this PIE (used in links given to handlers).",
    )

    # -- jobs and dispatch ------------------------------------------------------------------
    callback_secret: SecretStr | None = Field(
        None,
        description=(
            "HS256 secret for per-job callback tokens. Default: generated on first use in "
            "`<data_dir>/callback-secret` (mode 0600). Every API replica must share it."
        ),
    )
    dispatcher_concurrency: int = Field(
        128,
        ge=1,
        le=1024,
        description=(
            "Jobs one dispatcher runs or hands off at the same time (also the most it claims "
            "and finishes in one transaction)."
        ),
    )
    dispatcher_poll_seconds: float = Field(
        1.0,
        gt=0,
        le=60,
        description="Safety poll between wake-ups (new jobs wake the dispatcher at once).",
    )
    lease_seconds: float = Field(
        30.0, ge=1, description="A claimed job's lease; renewed while an in-process job runs."
    )
    dispatch_max_attempts: int = Field(
        5, ge=1, le=50, description="Dispatch tries before a job fails with `dispatch_failed`."
    )
    dispatch_backoff_seconds: float = Field(
        1.0, gt=0, description="First retry delay; doubled each try, capped by the next."
    )
    dispatch_backoff_cap_seconds: float = Field(60.0, gt=0, description="Longest retry delay.")
    inference_timeout_seconds: float = Field(
        900.0, gt=0, description="Deadline of an inference job once started (default 15 min)."
    )
    training_timeout_seconds: float = Field(
        86400.0, gt=0, description="Deadline of a training job once started (default 24 h)."
    )
    in_process_threads: int = Field(
        4, ge=1, le=256, description="Threads for synchronous in-process implementations."
    )
    shutdown_grace_seconds: float = Field(
        20.0, ge=0, description="How long a stopping dispatcher lets running jobs finish."
    )
    idempotency_ttl_seconds: int = Field(
        86400, ge=60, description="How long an `Idempotency-Key` is remembered (24 h)."
    )

    # -- AWS -------------------------------------------------------------------------------
    aws_region: str | None = Field(
        None, description="AWS region for Lambda/ECS clients (default: the boto3 chain)."
    )
    aws_endpoint_url: str | None = Field(
        None, description="Endpoint override for Lambda and ECS (a local AWS emulator in tests)."
    )
    aws_connect_timeout_seconds: float = Field(5.0, gt=0, description="boto3 connect timeout.")
    aws_read_timeout_seconds: float = Field(15.0, gt=0, description="boto3 read timeout.")
    ecs_launch_type: Literal["FARGATE", "EC2", "EXTERNAL"] | None = Field(
        "FARGATE", description="ECS launch type (ignored when a capacity provider is set)."
    )
    ecs_capacity_provider: str | None = Field(
        None, description="ECS capacity provider strategy (one provider) instead of a launch type."
    )
    ecs_subnets: list[str] = Field(
        default_factory=list, description="Subnets for awsvpc tasks (JSON list)."
    )
    ecs_security_groups: list[str] = Field(
        default_factory=list, description="Security groups for awsvpc tasks (JSON list)."
    )
    ecs_assign_public_ip: bool = Field(False, description="Give awsvpc tasks a public IP.")
    ecs_container_name: str = Field(
        "handler", description="Container that receives `PIE_JOB` in the task definition."
    )

    # -- logging --------------------------------------------------------------------------
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="Minimum log level."
    )
    log_format: Literal["json", "console"] = Field(
        "json", description="`json` (one object per line) or `console` (human readable)."
    )

    @field_validator("database_url")
    @classmethod
    def _normalise_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if value.startswith(("postgresql://", "postgres://", "postgresql+asyncpg://")):
            url = make_url("postgresql+asyncpg://" + value.split("://", 1)[1])
            # libpq spells it `sslmode`; asyncpg's connect() takes the same values as `ssl`.
            if "sslmode" in url.query and "ssl" not in url.query:
                url = url.difference_update_query(["sslmode"]).update_query_dict(
                    {"ssl": url.query["sslmode"]}
                )
            return url.render_as_string(hide_password=False)
        if value.startswith("sqlite://"):
            return "sqlite+aiosqlite://" + value.split("://", 1)[1]
        return value

    @model_validator(mode="after")
    def _check_auth(self) -> Settings:
        if self.auth_mode == "jwks" and not (self.jwks_url and self.issuer):
            raise ValueError("PIE_AUTH_MODE=jwks needs PIE_JWKS_URL and PIE_ISSUER")
        if self.lease_seconds <= self.aws_connect_timeout_seconds + self.aws_read_timeout_seconds:
            raise ValueError(
                "PIE_LEASE_SECONDS must exceed the AWS connect + read timeouts, or a slow "
                "dispatch could be re-claimed and sent twice"
            )
        if self.issuer == CALLBACK_ISSUER:
            raise ValueError(f"PIE_ISSUER may not be '{CALLBACK_ISSUER}' (callback tokens use it)")
        return self

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite+aiosqlite:///{self.data_dir / 'pie.db'}"

    @property
    def effective_issuer(self) -> str:
        return self.issuer or LOCAL_ISSUER

    @property
    def base_url(self) -> str:
        """Where handlers reach this PIE (for callback URLs)."""
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")


def configuration_markdown() -> str:
    """``docs/configuration.md``, generated from the model (a test keeps it current)."""
    lines = [
        "# Configuration",
        "",
        "<!-- generated by `make docs` (python -m pie.settings); do not edit by hand -->",
        "",
        "PIE reads its configuration from `PIE_*` environment variables (flags of `pie serve`",
        "override the few they name). Every setting has a default, so `make run` needs none.",
        "",
        "| variable | default | description |",
        "|---|---|---|",
    ]
    for name, field in Settings.model_fields.items():
        default = field.default
        if isinstance(default, Path):
            shown = f"`{default}`"
        elif default is None and field.default_factory is None:
            shown = "(unset)"
        elif field.default_factory is not None:
            shown = f"`{field.default_factory()}`"  # type: ignore[call-arg]
        else:
            shown = f"`{default}`"
        description = (field.description or "").replace("|", "\\|")
        lines.append(f"| `PIE_{name.upper()}` | {shown} | {description} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    import sys

    sys.stdout.write(configuration_markdown())
