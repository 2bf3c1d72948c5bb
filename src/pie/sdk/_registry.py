"""Models, versions and event subscriptions (API.md §2, §3, §11)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pie.registry.schemas import (
    Model,
    ModelAndVersion,
    ModelCreate,
    ModelUpdate,
    StatusChanged,
    Version,
    VersionAndModel,
    VersionCreate,
)
from pie.sdk._base import Call, Page, R, Resource, body_of, endpoint, nothing, one, page, paginated
from pie.subscriptions.schemas import Subscription, SubscriptionCreate, SubscriptionUpdate

ModelStatus = Literal["pending", "active"]
VersionStatus = Literal["pending", "training", "active", "failed"]
SubscriptionStatus = Literal["active", "paused", "stale"]


class Models(Resource[R]):
    """``client.models``: the global model registry."""

    @endpoint
    def list(
        self,
        *,
        status: ModelStatus | None = None,
        name: str | None = None,
        metadata: Mapping[str, str] | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Call[Page[Model]]:
        """Models, oldest first; ``name`` is a prefix, ``metadata`` matches string values."""
        params: dict[str, Any] = {"status": status, "name": name, "limit": limit, "cursor": cursor}
        params.update({f"metadata.{key}": value for key, value in (metadata or {}).items()})
        return Call("GET", "/v2/models", page(Model), params=params)

    iter = paginated(list)

    @endpoint
    def create(self, model: ModelCreate | Mapping[str, Any]) -> Call[ModelAndVersion]:
        """Register a model; its version ``"1"`` is created ``pending`` with it."""
        return Call("POST", "/v2/models", one(ModelAndVersion), body=body_of(model))

    @endpoint
    def get(self, model_id: str) -> Call[Model]:
        return Call("GET", "/v2/models/{model_id}", one(Model), path={"model_id": model_id})

    @endpoint
    def update(
        self, model_id: str, changes: ModelUpdate | Mapping[str, Any]
    ) -> Call[ModelAndVersion]:
        """Replace the fields given; an ``active`` model gets a new ``pending`` version."""
        return Call(
            "PUT",
            "/v2/models/{model_id}",
            one(ModelAndVersion),
            path={"model_id": model_id},
            body=body_of(changes),
        )


class Versions(Resource[R]):
    """``client.versions``: versions of one model and their status machine."""

    @endpoint
    def create(
        self, model_id: str, version: VersionCreate | Mapping[str, Any]
    ) -> Call[VersionAndModel]:
        return Call(
            "POST",
            "/v2/models/{model_id}/new_version",
            one(VersionAndModel),
            path={"model_id": model_id},
            body=body_of(version),
        )

    @endpoint
    def list(
        self, model_id: str, *, limit: int | None = None, cursor: str | None = None
    ) -> Call[Page[Version]]:
        return Call(
            "GET",
            "/v2/models/{model_id}/versions",
            page(Version),
            path={"model_id": model_id},
            params={"limit": limit, "cursor": cursor},
        )

    iter = paginated(list)

    @endpoint
    def get(self, model_id: str, version: str) -> Call[Version]:
        return Call(
            "GET",
            "/v2/models/{model_id}/versions/{model_version}",
            one(Version),
            path={"model_id": model_id, "model_version": version},
        )

    @endpoint
    def set_status(self, model_id: str, version: str, status: VersionStatus) -> Call[StatusChanged]:
        """Move a version (pending → training → active); ``triggered_events`` lists fired jobs."""
        return Call(
            "POST",
            "/v2/models/{model_id}/versions/{model_version}/new_status",
            one(StatusChanged),
            path={"model_id": model_id, "model_version": version},
            body={"status": status},
            replayable=True,
        )


class Subscriptions(Resource[R]):
    """``client.subscriptions``: event subscriptions whose source is a model."""

    @endpoint
    def create(
        self, model_id: str, subscription: SubscriptionCreate | Mapping[str, Any]
    ) -> Call[Subscription]:
        return Call(
            "POST",
            "/v2/models/{model_id}/event-subscriptions",
            one(Subscription),
            path={"model_id": model_id},
            body=body_of(subscription),
        )

    @endpoint
    def list(
        self,
        model_id: str,
        *,
        status: SubscriptionStatus | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Call[Page[Subscription]]:
        return Call(
            "GET",
            "/v2/models/{model_id}/event-subscriptions",
            page(Subscription),
            path={"model_id": model_id},
            params={"status": status, "limit": limit, "cursor": cursor},
        )

    iter = paginated(list)

    @endpoint
    def get(self, model_id: str, subscription_id: str) -> Call[Subscription]:
        return Call(
            "GET",
            "/v2/models/{model_id}/event-subscriptions/{subscription_id}",
            one(Subscription),
            path={"model_id": model_id, "subscription_id": subscription_id},
        )

    @endpoint
    def update(
        self,
        model_id: str,
        subscription_id: str,
        changes: SubscriptionUpdate | Mapping[str, Any],
    ) -> Call[Subscription]:
        """Change ``input``, ``label`` or ``status`` (``active`` re-arms a stale one)."""
        return Call(
            "PUT",
            "/v2/models/{model_id}/event-subscriptions/{subscription_id}",
            one(Subscription),
            path={"model_id": model_id, "subscription_id": subscription_id},
            body=body_of(changes),
        )

    @endpoint
    def delete(self, model_id: str, subscription_id: str) -> Call[None]:
        return Call(
            "DELETE",
            "/v2/models/{model_id}/event-subscriptions/{subscription_id}",
            nothing,
            path={"model_id": model_id, "subscription_id": subscription_id},
        )
