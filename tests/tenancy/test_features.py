"""Feature definitions (API.md §7): exact round trip, replacement, and every refusal."""

from __future__ import annotations

import asyncio
import copy
import http.server
import json
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from pie.auth.principal import Permission
from pie.db.database import Database
from pie.settings import Settings
from tests import factories, tokens
from tests.helpers import assert_envelope

# A realistic domain for ferry pricing. Keys are deliberately NOT in alphabetical order so
# that any re-sorting on the way through PIE (JSONB, sort_keys, dict rebuilds) is caught.
FERRY_FEATURES: list[dict[str, Any]] = [
    {
        "name": "route",
        "json_schema": {
            "type": "string",
            "title": "Crossing",
            "enum": ["CPJ-PNS", "PNS-CPJ", "ADL-KGC"],
            "description": "Cape Jervis ⇄ Penneshaw, or Adelaide → Kingscote",
        },
        "mandatory": True,
    },
    {
        "name": "departure_position",
        "json_schema": {
            "type": "array",
            "description": "[lat, lon] of the departure berth",
            "prefixItems": [
                {"type": "number", "minimum": -90, "maximum": 90},
                {"type": "number", "minimum": -180, "maximum": 180},
            ],
            "items": False,
            "minItems": 2,
            "default": [-35.6083, 138.1036],
        },
        "mandatory": False,
    },
    {
        "name": "price_band",
        "json_schema": {
            "type": "array",
            "prefixItems": [
                {"type": "number", "exclusiveMinimum": 0},
                {"type": "number", "exclusiveMinimum": 0},
            ],
            "minItems": 2,
            "items": False,
            "default": [49.5, 1250.0],
        },
        "mandatory": True,
    },
    {
        "name": "vehicle",
        "json_schema": {
            "oneOf": [
                {"const": None},
                {
                    "type": "object",
                    "required": ["kind"],
                    "properties": {
                        "kind": {"const": "car"},
                        "length_m": {"type": "number", "maximum": 6.5},
                    },
                    "additionalProperties": False,
                },
                {
                    "type": "object",
                    "required": ["kind", "axles"],
                    "properties": {
                        "kind": {"const": "truck"},
                        "axles": {"type": "integer", "minimum": 2, "maximum": 9},
                    },
                    "additionalProperties": False,
                },
            ],
            "default": None,
        },
        "mandatory": False,
    },
    {
        "name": "season_calendar",
        "json_schema": {
            "type": "object",
            "$defs": {
                "window": {
                    "type": "object",
                    "required": ["from", "to"],
                    "properties": {
                        "to": {"type": "string", "pattern": "^[0-9]{2}-[0-9]{2}$"},
                        "from": {"type": "string", "pattern": "^[0-9]{2}-[0-9]{2}$"},
                    },
                }
            },
            "properties": {
                "peak": {"$ref": "#/$defs/window"},
                "shoulder": {"type": "array", "items": {"$ref": "#/$defs/window"}},
                "surcharges": {
                    "type": "object",
                    "additionalProperties": {"type": "number", "minimum": 0},
                },
            },
            "default": {
                "peak": {"to": "01-31", "from": "12-20"},
                "shoulder": [{"from": "10-01", "to": "12-19"}],
                "surcharges": {"school_holidays": 12.5, "easter": 20},
            },
        },
        "mandatory": False,
    },
    {
        "name": "currency",
        "json_schema": {"enum": ["AUD", "NZD", "USD"], "default": "AUD"},
        "mandatory": True,
    },
    {
        "name": "max_discount_pct",
        "json_schema": {
            "maximum": 60,
            "type": "number",
            "minimum": 0,
            "multipleOf": 0.5,
            "examples": [10, 12.5],
        },
        "mandatory": False,
    },
]


def ordered(value: Any) -> Any:
    """JSON as nested (key, value) pair lists: equality then also checks key order."""
    return json.loads(json.dumps(value), object_pairs_hook=list)


def ordered_body(response: httpx.Response) -> Any:
    return json.loads(response.text, object_pairs_hook=list)


def member(pairs: list[tuple[str, Any]] | list[list[Any]], key: str) -> Any:
    found = [value for name, value in pairs if name == key]
    assert len(found) == 1, (key, pairs)
    return found[0]


@pytest.fixture
async def domain_url(db: Database) -> str:
    """An active client ``ferries`` with domain ``kangaroo_island`` holding FERRY_FEATURES."""
    await factories.create_client(db, "ferries", name="Ferries")
    await factories.create_domain(
        db, "ferries", "kangaroo_island", features=copy.deepcopy(FERRY_FEATURES)
    )
    return "/v2/clients/ferries/domains/kangaroo_island"


class _CountingHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.server.requests.append(self.path)  # type: ignore[attr-defined]
        body = json.dumps({"type": "string"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/schema+json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return


class SchemaServer:
    """A real HTTP server on 127.0.0.1:<free port> that counts the requests it receives."""

    def __init__(self) -> None:
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _CountingHandler)
        self.httpd.requests = []  # type: ignore[attr-defined]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def requests(self) -> list[str]:
        return self.httpd.requests  # type: ignore[attr-defined, no-any-return]


@pytest.fixture
def schema_server() -> Iterator[SchemaServer]:
    server = SchemaServer()
    server.thread.start()
    try:
        yield server
    finally:
        server.httpd.shutdown()
        server.httpd.server_close()
        server.thread.join(timeout=5)


class TestFeatureRoundTrip:
    async def test_create_returns_and_stores_features_exactly_including_key_order(
        self, client: httpx.AsyncClient, db: Database, admin: dict[str, str]
    ) -> None:
        await factories.create_client(db, "ferries")
        response = await client.post(
            "/v2/clients/ferries/domains",
            json={"domain_id": "kangaroo_island", "features": FERRY_FEATURES},
            headers=admin,
        )
        assert response.status_code == 201, response.text
        expected = ordered(FERRY_FEATURES)
        assert member(ordered_body(response), "features") == expected
        url = "/v2/clients/ferries/domains/kangaroo_island"
        domain = await client.get(url, headers=admin)
        assert member(ordered_body(domain), "features") == expected
        features = await client.get(f"{url}/features", headers=admin)
        assert features.status_code == 200
        assert ordered_body(features) == expected

    async def test_put_replaces_the_list_and_returns_the_report(
        self, client: httpx.AsyncClient, admin: dict[str, str], domain_url: str
    ) -> None:
        replacement = copy.deepcopy(FERRY_FEATURES[::-1])
        replacement[0]["json_schema"]["maximum"] = 40
        replacement.append(
            {
                "name": "passengers",
                "json_schema": {"minimum": 1, "type": "integer", "default": 1},
                "mandatory": True,
            }
        )
        response = await client.put(
            f"{domain_url}/features", json={"features": replacement}, headers=admin
        )
        assert response.status_code == 200, response.text
        assert ordered_body(response) == ordered(
            {
                "features": replacement,
                "unchanged_services": [],
                "reinit_required_services": [],
            }
        )
        stored = await client.get(f"{domain_url}/features", headers=admin)
        assert ordered_body(stored) == ordered(replacement)
        domain = await client.get(domain_url, headers=admin)
        assert member(ordered_body(domain), "features") == ordered(replacement)

    async def test_put_with_the_same_list_round_trips_exactly(
        self, client: httpx.AsyncClient, admin: dict[str, str], domain_url: str
    ) -> None:
        response = await client.put(
            f"{domain_url}/features", json={"features": FERRY_FEATURES}, headers=admin
        )
        assert response.status_code == 200
        assert member(ordered_body(response), "features") == ordered(FERRY_FEATURES)
        stored = await client.get(f"{domain_url}/features", headers=admin)
        assert ordered_body(stored) == ordered(FERRY_FEATURES)

    async def test_put_empty_list_clears_the_features(
        self, client: httpx.AsyncClient, admin: dict[str, str], domain_url: str
    ) -> None:
        response = await client.put(f"{domain_url}/features", json={"features": []}, headers=admin)
        assert response.status_code == 200
        assert response.json()["features"] == []
        assert (await client.get(f"{domain_url}/features", headers=admin)).json() == []

    async def test_put_bumps_updated_at_but_not_created_at(
        self, client: httpx.AsyncClient, admin: dict[str, str], domain_url: str
    ) -> None:
        before = (await client.get(domain_url, headers=admin)).json()
        await client.put(f"{domain_url}/features", json={"features": []}, headers=admin)
        after = (await client.get(domain_url, headers=admin)).json()
        assert after["created_at"] == before["created_at"]
        assert after["updated_at"] > before["updated_at"]
        assert after["status"] == before["status"]

    async def test_mandatory_defaults_to_false(
        self, client: httpx.AsyncClient, admin: dict[str, str], domain_url: str
    ) -> None:
        response = await client.put(
            f"{domain_url}/features",
            json={"features": [{"name": "note", "json_schema": {}}]},
            headers=admin,
        )
        assert response.status_code == 200
        assert response.json()["features"] == [
            {"name": "note", "json_schema": {}, "mandatory": False}
        ]

    async def test_tenant_token_with_manage_domains_replaces_features(
        self, client: httpx.AsyncClient, settings: Settings, domain_url: str
    ) -> None:
        tenant = tokens.machine(settings, "ferries", Permission.MANAGE_DOMAINS)
        response = await client.put(
            f"{domain_url}/features", json={"features": FERRY_FEATURES[:2]}, headers=tenant
        )
        assert response.status_code == 200, response.text

    async def test_read_only_token_cannot_replace_features(
        self, client: httpx.AsyncClient, settings: Settings, domain_url: str
    ) -> None:
        reader = tokens.machine(settings, "ferries", Permission.READ_DOMAINS)
        response = await client.put(f"{domain_url}/features", json={"features": []}, headers=reader)
        assert_envelope(response, 403)
        stored = await client.get(f"{domain_url}/features", headers=reader)
        assert ordered_body(stored) == ordered(FERRY_FEATURES)


class TestGetFeatures:
    async def test_missing_domain_is_404(
        self, client: httpx.AsyncClient, admin: dict[str, str], domain_url: str
    ) -> None:
        response = await client.get("/v2/clients/ferries/domains/ghost/features", headers=admin)
        assert "ghost" in assert_envelope(response, 404)["message"]

    async def test_missing_client_is_404(
        self, client: httpx.AsyncClient, admin: dict[str, str]
    ) -> None:
        response = await client.get("/v2/clients/ghost/domains/d/features", headers=admin)
        assert_envelope(response, 404)

    async def test_other_tenant_is_403(
        self, client: httpx.AsyncClient, settings: Settings, domain_url: str
    ) -> None:
        outsider = tokens.human(settings, "client:someone-else")
        response = await client.get(f"{domain_url}/features", headers=outsider)
        body = assert_envelope(response, 403)
        assert "route" not in body["message"]


class TestReplaceFeaturesTargets:
    async def test_missing_domain_is_404(
        self, client: httpx.AsyncClient, admin: dict[str, str], domain_url: str
    ) -> None:
        response = await client.put(
            "/v2/clients/ferries/domains/ghost/features", json={"features": []}, headers=admin
        )
        assert_envelope(response, 404)

    async def test_missing_domain_is_404_even_when_the_features_are_invalid(
        self, client: httpx.AsyncClient, admin: dict[str, str], domain_url: str
    ) -> None:
        """Order of checks (§0): 404 comes before 422."""
        response = await client.put(
            "/v2/clients/ferries/domains/ghost/features",
            json={"features": [{"name": "x", "json_schema": {"type": "strin"}}]},
            headers=admin,
        )
        assert_envelope(response, 404)

    async def test_missing_client_is_404(
        self, client: httpx.AsyncClient, admin: dict[str, str]
    ) -> None:
        response = await client.put(
            "/v2/clients/ghost/domains/d/features", json={"features": []}, headers=admin
        )
        assert_envelope(response, 404)


VALID_FIRST = {"name": "route", "json_schema": {"type": "string"}, "mandatory": True}

INVALID_SCHEMAS = [
    pytest.param({"type": "strin"}, "features/1/json_schema/type", id="unknown-type"),
    pytest.param({"minimum": "x"}, "features/1/json_schema/minimum", id="minimum-not-number"),
    pytest.param(
        {"type": "object", "properties": {"a": {"type": 5}}},
        "features/1/json_schema/properties/a/type",
        id="nested-invalid-type",
    ),
    pytest.param({"required": "a"}, "features/1/json_schema/required", id="required-not-array"),
    pytest.param(
        {"type": "integer", "default": "ten"},
        "features/1/json_schema/default",
        id="default-wrong-type",
    ),
    pytest.param(
        {"enum": ["AUD", "NZD"], "default": "EUR"},
        "features/1/json_schema/default",
        id="default-not-in-enum",
    ),
    pytest.param(
        {
            "type": "object",
            "properties": {"seats": {"type": "integer", "minimum": 1}},
            "default": {"seats": 0},
        },
        "features/1/json_schema/default/seats",
        id="nested-default-invalid",
    ),
    pytest.param(
        {"type": "array", "prefixItems": [{"type": "number"}], "items": False, "default": [1, 2]},
        "features/1/json_schema/default",
        id="tuple-default-too-long",
    ),
    pytest.param({"type": "string", "pattern": "(?=a)"}, "features/1/json_schema", id="look-ahead"),
    pytest.param(
        {"type": "string", "pattern": "(?<!x)y"}, "features/1/json_schema", id="look-behind"
    ),
    pytest.param(
        {"type": "string", "pattern": "(a+)\\1"}, "features/1/json_schema", id="back-reference"
    ),
    pytest.param(
        {"type": "object", "patternProperties": {"(?=k)": {}}},
        "features/1/json_schema",
        id="look-ahead-in-patternProperties",
    ),
    pytest.param({"$ref": "#/$defs/missing"}, "features/1/json_schema", id="dangling-local-ref"),
    pytest.param(
        {"$schema": "http://json-schema.org/draft-04/schema#", "type": "string"},
        "features/1/json_schema/$schema",
        id="other-draft",
    ),
]


class TestInvalidFeatureDefinitions:
    @pytest.mark.parametrize(("schema", "location"), INVALID_SCHEMAS)
    async def test_put_invalid_schema_is_422_naming_the_location_and_keeps_features(
        self,
        client: httpx.AsyncClient,
        admin: dict[str, str],
        domain_url: str,
        schema: dict[str, Any],
        location: str,
    ) -> None:
        features = [VALID_FIRST, {"name": "bad", "json_schema": schema, "mandatory": False}]
        response = await client.put(
            f"{domain_url}/features", json={"features": features}, headers=admin
        )
        body = assert_envelope(response, 422)
        assert f"{location}:" in body["message"] or f"{location}/" in body["message"]
        assert any(e["path"].startswith(location) for e in body["errors"])
        assert not any(e["path"].startswith("features/0") for e in body["errors"])
        stored = await client.get(f"{domain_url}/features", headers=admin)
        assert ordered_body(stored) == ordered(FERRY_FEATURES)

    @pytest.mark.parametrize(("schema", "location"), INVALID_SCHEMAS)
    async def test_create_with_invalid_schema_is_422_and_creates_nothing(
        self,
        client: httpx.AsyncClient,
        db: Database,
        admin: dict[str, str],
        schema: dict[str, Any],
        location: str,
    ) -> None:
        await factories.create_client(db, "ferries")
        features = [VALID_FIRST, {"name": "bad", "json_schema": schema}]
        response = await client.post(
            "/v2/clients/ferries/domains",
            json={"domain_id": "ki", "features": features},
            headers=admin,
        )
        body = assert_envelope(response, 422)
        assert location in body["message"]
        assert_envelope(await client.get("/v2/clients/ferries/domains/ki", headers=admin), 404)
        assert (await client.get("/v2/clients/ferries/domains", headers=admin)).json() == []

    async def test_duplicate_feature_names_are_422(
        self, client: httpx.AsyncClient, admin: dict[str, str], domain_url: str
    ) -> None:
        features = [
            VALID_FIRST,
            {"name": "fare", "json_schema": {"type": "number"}},
            {"name": "route", "json_schema": {"type": "string"}},
        ]
        response = await client.put(
            f"{domain_url}/features", json={"features": features}, headers=admin
        )
        body = assert_envelope(response, 422)
        assert "features/2/name" in body["message"]
        assert "route" in body["message"]
        assert "duplicate" in body["message"]
        assert ordered_body(await client.get(f"{domain_url}/features", headers=admin)) == (
            ordered(FERRY_FEATURES)
        )

    async def test_every_problem_is_reported_at_once(
        self, client: httpx.AsyncClient, admin: dict[str, str], domain_url: str
    ) -> None:
        features = [
            {"name": "a", "json_schema": {"type": "strin"}},
            VALID_FIRST,
            {"name": "b", "json_schema": {"type": "integer", "default": 1.5}},
            {"name": "a", "json_schema": {}},
        ]
        response = await client.put(
            f"{domain_url}/features", json={"features": features}, headers=admin
        )
        body = assert_envelope(response, 422)
        paths = [e["path"] for e in body["errors"]]
        assert "features/0/json_schema/type" in paths
        assert "features/2/json_schema/default" in paths
        assert "features/3/name" in paths
        for path in paths:
            assert path in body["message"]
        assert all(set(e) == {"path", "message"} for e in body["errors"])


class TestRemoteReferences:
    @pytest.mark.parametrize(
        ("schema", "location"),
        [
            pytest.param({"$ref": "{base}/fare.json"}, "features/1/json_schema", id="ref"),
            pytest.param(
                {"type": "object", "properties": {"x": {"$ref": "{base}/x.json#/defs/y"}}},
                "features/1/json_schema",
                id="nested-ref",
            ),
            pytest.param(
                {"$id": "{base}/root.json", "$ref": "fare.json"},
                "features/1/json_schema",
                id="relative-ref-against-remote-id",
            ),
            pytest.param(
                {"$schema": "{base}/meta.json", "type": "string"},
                "features/1/json_schema/$schema",
                id="remote-meta-schema",
            ),
            pytest.param(
                {"$dynamicRef": "{base}/dyn.json"}, "features/1/json_schema", id="dynamic-ref"
            ),
        ],
    )
    async def test_http_ref_is_refused_without_fetching(
        self,
        client: httpx.AsyncClient,
        admin: dict[str, str],
        domain_url: str,
        schema_server: SchemaServer,
        schema: dict[str, Any],
        location: str,
    ) -> None:
        concrete = json.loads(json.dumps(schema).replace("{base}", schema_server.base))
        features = [VALID_FIRST, {"name": "remote", "json_schema": concrete}]
        response = await client.put(
            f"{domain_url}/features", json={"features": features}, headers=admin
        )
        body = assert_envelope(response, 422)
        assert location in body["message"]
        created = await client.post(
            "/v2/clients/ferries/domains",
            json={"domain_id": "remote", "features": features},
            headers=admin,
        )
        assert_envelope(created, 422)
        await asyncio.sleep(0.05)  # let a stray request reach the server before counting
        assert schema_server.requests == []
        stored = await client.get(f"{domain_url}/features", headers=admin)
        assert ordered_body(stored) == ordered(FERRY_FEATURES)
        # The server was reachable all along, so zero requests means PIE never tried.
        async with httpx.AsyncClient() as outside:
            probe = await outside.get(f"{schema_server.base}/probe.json")
        assert probe.status_code == 200
        assert schema_server.requests == ["/probe.json"]

    async def test_file_ref_is_refused_and_leaks_nothing(
        self, client: httpx.AsyncClient, admin: dict[str, str], domain_url: str
    ) -> None:
        features = [VALID_FIRST, {"name": "local", "json_schema": {"$ref": "file:///etc/passwd"}}]
        response = await client.put(
            f"{domain_url}/features", json={"features": features}, headers=admin
        )
        body = assert_envelope(response, 422)
        assert "features/1/json_schema" in body["message"]
        assert "root:" not in response.text
        stored = await client.get(f"{domain_url}/features", headers=admin)
        assert ordered_body(stored) == ordered(FERRY_FEATURES)


class TestFeatureBodySyntax:
    @pytest.mark.parametrize(
        "json_schema", ["string", ["type", "string"], True, None, 42], ids=repr
    )
    async def test_json_schema_not_an_object_is_400(
        self,
        client: httpx.AsyncClient,
        admin: dict[str, str],
        domain_url: str,
        json_schema: object,
    ) -> None:
        features = [VALID_FIRST, {"name": "bad", "json_schema": json_schema}]
        response = await client.put(
            f"{domain_url}/features", json={"features": features}, headers=admin
        )
        body = assert_envelope(response, 400)
        assert "json_schema" in body["message"]
        stored = await client.get(f"{domain_url}/features", headers=admin)
        assert ordered_body(stored) == ordered(FERRY_FEATURES)

    @pytest.mark.parametrize("features", [{"route": {}}, "route", None, 3], ids=repr)
    async def test_features_not_a_list_is_400(
        self, client: httpx.AsyncClient, admin: dict[str, str], domain_url: str, features: object
    ) -> None:
        response = await client.put(
            f"{domain_url}/features", json={"features": features}, headers=admin
        )
        assert "features" in assert_envelope(response, 400)["message"]
        created = await client.post(
            "/v2/clients/ferries/domains",
            json={"domain_id": "other", "features": features},
            headers=admin,
        )
        assert_envelope(created, 400)

    @pytest.mark.parametrize(
        ("feature", "named"),
        [
            ({"json_schema": {}}, "name"),
            ({"name": "x"}, "json_schema"),
            ({"name": "", "json_schema": {}}, "name"),
            ({"name": 5, "json_schema": {}}, "name"),
            ({"name": "x", "json_schema": {}, "required": True}, "required"),
            ({"name": "x", "json_schema": {}, "mandatory": "yes"}, "mandatory"),
            ({"name": "x", "json_schema": {}, "mandatory": 1}, "mandatory"),
            ({"name": "x", "json_schema": {}, "mandatory": None}, "mandatory"),
        ],
    )
    async def test_malformed_feature_definition_is_400_naming_the_field(
        self,
        client: httpx.AsyncClient,
        admin: dict[str, str],
        domain_url: str,
        feature: dict[str, Any],
        named: str,
    ) -> None:
        response = await client.put(
            f"{domain_url}/features", json={"features": [feature]}, headers=admin
        )
        assert named in assert_envelope(response, 400)["message"]
        stored = await client.get(f"{domain_url}/features", headers=admin)
        assert ordered_body(stored) == ordered(FERRY_FEATURES)

    @pytest.mark.parametrize(
        "payload", [{}, [], {"features": [], "domain_id": "x"}], ids=["missing", "array", "extra"]
    )
    async def test_body_missing_features_or_with_unknown_fields_is_400(
        self, client: httpx.AsyncClient, admin: dict[str, str], domain_url: str, payload: object
    ) -> None:
        response = await client.put(f"{domain_url}/features", json=payload, headers=admin)
        assert_envelope(response, 400)
        stored = await client.get(f"{domain_url}/features", headers=admin)
        assert ordered_body(stored) == ordered(FERRY_FEATURES)

    async def test_malformed_json_is_400(
        self, client: httpx.AsyncClient, admin: dict[str, str], domain_url: str
    ) -> None:
        response = await client.put(
            f"{domain_url}/features",
            content=b'{"features": [',
            headers={**admin, "Content-Type": "application/json"},
        )
        assert_envelope(response, 400)
