"""The SDK covers the API: its route type is the OpenAPI document, every operation has a
method, and path segments cannot escape the route they are put in."""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterator
from typing import Any, get_args

import httpx
import pytest

import pie.sdk
from pie.app import create_app
from pie.sdk._base import Call, Resource, _Method
from pie.sdk._routes import Route
from pie.settings import Settings

Operation = tuple[str, str]

EXEMPT: set[Operation] = {("GET", "/metrics")}
"""Prometheus scrapes this, not the SDK."""


@pytest.fixture(scope="module")
def openapi_paths(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The paths of the served document, with metrics on so `/metrics` is in it."""
    data = tmp_path_factory.mktemp("openapi")
    settings = Settings(database_url=f"sqlite:///{data / 'pie.db'}", data_dir=data, metrics="admin")
    paths: dict[str, Any] = create_app(settings, dispatcher=False).openapi()["paths"]
    return paths


def _resource_classes() -> list[type[Any]]:
    """Every SDK resource, found by subclassing rather than listed by hand."""
    found: list[type[Any]] = []
    pending: list[type[Any]] = [Resource]
    while pending:
        cls = pending.pop()
        for sub in cls.__subclasses__():
            if sub.__module__.startswith("pie.sdk.") and sub not in found:
                found.append(sub)
                pending.append(sub)
    return found


def _methods() -> Iterator[tuple[str, _Method]]:
    seen: set[int] = set()
    for cls in _resource_classes():
        for name, value in vars(cls).items():
            if isinstance(value, _Method) and id(value.build) not in seen:
                seen.add(id(value.build))
                yield f"{cls.__name__}.{name}", value


def _dummy(parameter: inspect.Parameter) -> Any:
    """An argument the builder accepts; only its shape matters, never its content."""
    annotation = str(parameter.annotation)
    if annotation == "str":
        return f"{parameter.name}-value"
    if annotation == "VersionStatus":
        return "active"
    if annotation.startswith("Sequence"):
        return []
    return {}


def _calls(method: _Method) -> Iterator[Call[Any]]:
    """The calls a method makes: with and without ``service_id`` where it takes one."""
    signature = inspect.signature(method.build)
    required = [
        _dummy(p)
        for p in list(signature.parameters.values())[1:]
        if p.kind is p.POSITIONAL_OR_KEYWORD and p.default is p.empty
    ]
    variants: list[dict[str, Any]] = [{}]
    scoped = signature.parameters.get("service_id")
    if scoped is not None and scoped.kind is scoped.KEYWORD_ONLY:
        variants.append({"service_id": "service-value"})
    for extra in variants:
        built = method.build(None, *required, **extra)
        if inspect.isgenerator(built):  # a flow: its first request names its route
            built = next(built)
        assert isinstance(built, Call)
        yield built


def sdk_operations() -> dict[Operation, list[str]]:
    found: dict[Operation, list[str]] = {}
    for name, method in _methods():
        for call in _calls(method):
            found.setdefault((call.method, call.route), []).append(name)
    return found


def test_route_type_is_the_openapi_paths(openapi_paths: dict[str, Any]) -> None:
    assert set(get_args(Route)) == set(openapi_paths)


def test_every_operation_has_an_sdk_method(openapi_paths: dict[str, Any]) -> None:
    documented = {
        (method.upper(), path)
        for path, operations in openapi_paths.items()
        for method in operations
        if method in {"get", "post", "put", "patch", "delete"}
    }
    covered = sdk_operations()
    assert documented - EXEMPT - set(covered) == set()
    assert set(covered) - documented == set()


def test_enumeration_reaches_every_resource() -> None:
    """Guards the test above: a broken discovery would find nothing and prove nothing."""
    names = {name.split(".")[0] for name, _ in _methods()}
    assert names >= {
        "_Client",
        "Models",
        "Versions",
        "Jobs",
        "Subscriptions",
        "Clients",
        "Domains",
        "Services",
        "Assignments",
    }
    assert len(sdk_operations()) >= 40


@pytest.mark.parametrize("name", [name for name, _ in _methods()])
def test_calls_fill_every_placeholder(name: str) -> None:
    for call in _calls(dict(_methods())[name]):
        assert set(call.path) == set(re.findall(r"{(\w+)}", call.route)), name
        assert "{" not in call.url()


def test_all_is_sorted_and_complete() -> None:
    """Ruff's isort-style order (RUF022): constants, then classes, then the rest."""

    def order(name: str) -> tuple[int, str]:
        return (0 if name.isupper() else 1 if name[0].isupper() else 2, name)

    exported = pie.sdk.__all__
    assert exported == sorted(exported, key=order)
    public = {name for name in vars(pie.sdk) if not name.startswith("_")}
    assert set(exported) == public
    assert len(exported) == len(set(exported))


def _raw_path(model_id: str) -> str:
    call = Call("GET", "/v2/models/{model_id}", lambda r: r, path={"model_id": model_id})
    with httpx.Client(base_url="http://pie.test") as http:
        return http.build_request(call.method, call.url()).url.raw_path.decode()


@pytest.mark.parametrize(
    ("model_id", "sent"),
    [
        ("plain-1.0", "/v2/models/plain-1.0"),
        ("a:b", "/v2/models/a%3Ab"),
        ("x/y", "/v2/models/x%2Fy"),
        ("..", "/v2/models/%2E%2E"),
        (".", "/v2/models/%2E"),
        ("../clients", "/v2/models/..%2Fclients"),
        ("a b?c#d%", "/v2/models/a%20b%3Fc%23d%25"),
    ],
)
def test_path_segments_are_encoded(model_id: str, sent: str) -> None:
    """What goes on the wire stays one segment of the route (httpx does not re-normalise)."""
    assert _raw_path(model_id) == sent
