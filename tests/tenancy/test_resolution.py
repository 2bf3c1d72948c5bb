"""Feature resolution and definition checks (API.md §7), without HTTP or a database."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import pytest

from pie.errors import ErrorDetail, Unprocessable
from pie.tenancy import resolution
from pie.tenancy.schemas import FeatureDefinition


def feature(
    name: str, json_schema: dict[str, Any], *, mandatory: bool = False
) -> FeatureDefinition:
    return FeatureDefinition(name=name, json_schema=json_schema, mandatory=mandatory)


@dataclass(frozen=True)
class PlainFeature:
    """Any object with ``name``/``json_schema``/``mandatory`` is a Feature (the Protocol)."""

    name: str
    json_schema: dict[str, Any]
    mandatory: bool = False


ROUTE = feature("route", {"type": "string", "enum": ["CPJ-PNS", "PNS-CPJ"]}, mandatory=True)
CURRENCY = feature("currency", {"enum": ["AUD", "NZD"], "default": "AUD"}, mandatory=True)
PRICE_BAND = feature(
    "price_band",
    {
        "type": "array",
        "prefixItems": [{"type": "number", "minimum": 0}, {"type": "number", "minimum": 0}],
        "items": False,
        "minItems": 2,
        "default": [20, 180],
    },
)
VEHICLE = feature(
    "vehicle",
    {
        "oneOf": [
            {"type": "object", "properties": {"kind": {"const": "car"}}, "required": ["kind"]},
            {
                "type": "object",
                "properties": {"kind": {"const": "truck"}, "axles": {"type": "integer"}},
                "required": ["kind", "axles"],
            },
        ]
    },
)
SEATS = feature("seats", {"type": "integer", "minimum": 1})
FERRY = [ROUTE, CURRENCY, PRICE_BAND, VEHICLE, SEATS]


class TestResolve:
    def test_valid_caller_value_wins_over_the_default(self) -> None:
        result = resolution.resolve(FERRY, {"route": "CPJ-PNS", "currency": "NZD"})
        assert result.ok
        assert result.resolved["currency"] == "NZD"
        assert result.resolved["route"] == "CPJ-PNS"

    def test_schema_default_is_used_when_no_value_is_given(self) -> None:
        result = resolution.resolve(FERRY, {"route": "PNS-CPJ"})
        assert result.ok
        assert result.resolved == {"route": "PNS-CPJ", "currency": "AUD", "price_band": [20, 180]}

    def test_falsy_values_are_values_not_absence(self) -> None:
        features = [
            feature("flag", {"type": "boolean", "default": True}),
            feature("count", {"type": "integer", "default": 5}),
            feature("note", {"type": ["string", "null"], "default": "n/a"}),
        ]
        result = resolution.resolve(features, {"flag": False, "count": 0, "note": None})
        assert result.ok
        assert result.resolved == {"flag": False, "count": 0, "note": None}

    def test_null_default_is_a_default(self) -> None:
        features = [
            feature("vehicle", {"type": ["object", "null"], "default": None}, mandatory=True)
        ]
        result = resolution.resolve(features, {})
        assert result.ok
        assert result.resolved == {"vehicle": None}

    def test_mandatory_without_value_or_default_is_missing(self) -> None:
        result = resolution.resolve(FERRY, {})
        assert not result.ok
        assert result.missing == ["route"]
        assert "route" not in result.resolved
        assert result.resolved == {"currency": "AUD", "price_band": [20, 180]}

    def test_non_mandatory_without_value_or_default_is_absent(self) -> None:
        result = resolution.resolve(FERRY, {"route": "CPJ-PNS"})
        assert result.ok
        assert "vehicle" not in result.resolved
        assert "seats" not in result.resolved
        assert result.missing == []

    def test_invalid_value_is_reported_with_a_message(self) -> None:
        result = resolution.resolve(FERRY, {"route": "ADL-KGC", "seats": 0})
        assert not result.ok
        assert [i.name for i in result.invalid] == ["route", "seats"]
        messages = {i.name: i.message for i in result.invalid}
        assert "ADL-KGC" in messages["route"]
        assert "minimum" in messages["seats"] or "1" in messages["seats"]
        assert "route" not in result.resolved
        assert "seats" not in result.resolved

    def test_invalid_value_is_not_replaced_by_the_default(self) -> None:
        result = resolution.resolve(FERRY, {"route": "CPJ-PNS", "currency": "EUR"})
        assert [i.name for i in result.invalid] == ["currency"]
        assert "currency" not in result.resolved

    def test_nested_invalid_value_names_the_location_inside_the_value(self) -> None:
        result = resolution.resolve(FERRY, {"route": "CPJ-PNS", "price_band": [20, -1]})
        assert [i.name for i in result.invalid] == ["price_band"]
        assert "/1" in result.invalid[0].message

    def test_tuple_schema_refuses_extra_items(self) -> None:
        result = resolution.resolve(FERRY, {"route": "CPJ-PNS", "price_band": [1, 2, 3]})
        assert [i.name for i in result.invalid] == ["price_band"]

    def test_one_of_accepts_exactly_one_branch(self) -> None:
        ok = resolution.resolve(
            FERRY, {"route": "CPJ-PNS", "vehicle": {"kind": "truck", "axles": 3}}
        )
        assert ok.ok
        assert ok.resolved["vehicle"] == {"kind": "truck", "axles": 3}
        bad = resolution.resolve(FERRY, {"route": "CPJ-PNS", "vehicle": {"kind": "bus"}})
        assert [i.name for i in bad.invalid] == ["vehicle"]

    def test_unknown_names_are_reported_sorted(self) -> None:
        result = resolution.resolve(FERRY, {"route": "CPJ-PNS", "zeta": 1, "alpha": 2})
        assert not result.ok
        assert result.unknown == ["alpha", "zeta"]
        assert "alpha" not in result.resolved
        assert result.resolved["route"] == "CPJ-PNS"

    def test_no_definitions_and_no_values_resolves_to_empty(self) -> None:
        result = resolution.resolve([], {})
        assert result.ok
        assert result.resolved == {}

    def test_every_problem_kind_is_collected_together(self) -> None:
        result = resolution.resolve(FERRY, {"seats": "two", "colour": "red"})
        assert result.missing == ["route"]
        assert [i.name for i in result.invalid] == ["seats"]
        assert result.unknown == ["colour"]
        details = result.details()
        assert [d.path for d in details] == ["route", "seats", "colour"]
        assert details[0].message == "mandatory feature has no value and no default"
        assert details[2].message == "unknown feature"

    def test_resolved_keeps_definition_order(self) -> None:
        result = resolution.resolve(FERRY, {"seats": 2, "route": "CPJ-PNS"})
        assert list(result.resolved) == ["route", "currency", "price_band", "seats"]

    def test_resolution_does_not_mutate_definitions_or_inputs(self) -> None:
        definitions = copy.deepcopy(FERRY)
        provided = {"route": "CPJ-PNS", "vehicle": {"kind": "car"}}
        snapshot = copy.deepcopy(provided)
        resolution.resolve(definitions, provided)
        assert provided == snapshot
        assert [d.model_dump() for d in definitions] == [d.model_dump() for d in FERRY]

    def test_resolved_defaults_are_independent_copies(self) -> None:
        first = resolution.resolve(FERRY, {"route": "CPJ-PNS"}).resolved
        first["price_band"].append(999)
        assert PRICE_BAND.json_schema["default"] == [20, 180]
        second = resolution.resolve(FERRY, {"route": "CPJ-PNS"}).resolved
        assert second["price_band"] == [20, 180]

    def test_any_object_with_the_feature_attributes_works(self) -> None:
        features = [PlainFeature("route", {"type": "string"}, mandatory=True)]
        assert resolution.resolve(features, {"route": "x"}).resolved == {"route": "x"}
        assert resolution.resolve(features, {}).missing == ["route"]


class TestResolveOrRaise:
    def test_returns_the_resolved_mapping_when_everything_resolves(self) -> None:
        assert resolution.resolve_or_raise(FERRY, {"route": "CPJ-PNS", "seats": 2}) == {
            "route": "CPJ-PNS",
            "currency": "AUD",
            "price_band": [20, 180],
            "seats": 2,
        }

    def test_raises_unprocessable_naming_every_failing_feature_and_reason(self) -> None:
        with pytest.raises(Unprocessable) as caught:
            resolution.resolve_or_raise(
                FERRY, {"seats": 0, "vehicle": {"kind": "bus"}, "colour": "red"}
            )
        error = caught.value
        assert error.status_code == 422
        message = error.message
        assert message.startswith("features do not resolve: ")
        assert "route: mandatory feature has no value and no default" in message
        assert "seats: " in message
        assert "vehicle: " in message
        assert "colour: unknown feature" in message
        assert {e.path for e in error.errors} == {"route", "seats", "vehicle", "colour"}
        body = error.body()
        assert body["success"] is False
        assert body["message"] == message
        assert len(body["errors"]) == 4

    def test_a_single_missing_feature_raises(self) -> None:
        with pytest.raises(Unprocessable, match="route"):
            resolution.resolve_or_raise([ROUTE], {})

    def test_reports_at_most_twenty_problems(self) -> None:
        provided = {f"unknown_{i:02d}": i for i in range(30)}
        with pytest.raises(Unprocessable) as caught:
            resolution.resolve_or_raise([], provided)
        assert len(caught.value.errors) == 20
        assert caught.value.message.count("unknown feature") == 20


class TestCheckDefinitions:
    def test_valid_definitions_have_no_problems(self) -> None:
        assert resolution.check_definitions(FERRY) == []
        resolution.ensure_valid_definitions(FERRY)  # does not raise

    def test_empty_list_is_valid(self) -> None:
        assert resolution.check_definitions([]) == []

    def test_duplicate_names_are_reported_at_the_later_index(self) -> None:
        problems = resolution.check_definitions([ROUTE, SEATS, ROUTE, SEATS])
        assert [p.path for p in problems] == ["features/2/name", "features/3/name"]
        assert "route" in problems[0].message
        assert "seats" in problems[1].message

    @pytest.mark.parametrize(
        ("schema", "path"),
        [
            ({"type": "strin"}, "features/1/json_schema/type"),
            ({"minimum": "x"}, "features/1/json_schema/minimum"),
            ({"items": {"type": "nope"}}, "features/1/json_schema/items/type"),
            ({"type": "string", "pattern": "(?=a)"}, "features/1/json_schema"),
            ({"$ref": "http://127.0.0.1:9/schema.json"}, "features/1/json_schema"),
            ({"$ref": "file:///etc/passwd"}, "features/1/json_schema"),
            ({"$schema": "https://example.com/meta"}, "features/1/json_schema/$schema"),
        ],
    )
    def test_invalid_schema_is_reported_at_its_location(
        self, schema: dict[str, Any], path: str
    ) -> None:
        problems = resolution.check_definitions([ROUTE, feature("bad", schema)])
        assert problems
        assert problems[0].path == path
        assert problems[0].message

    def test_declared_2020_12_meta_schema_is_accepted(self) -> None:
        for uri in (
            "https://json-schema.org/draft/2020-12/schema",
            "https://json-schema.org/draft/2020-12/schema#",
        ):
            assert resolution.check_definitions([feature("x", {"$schema": uri})]) == []

    def test_default_must_validate_against_its_own_schema(self) -> None:
        problems = resolution.check_definitions(
            [feature("seats", {"type": "integer", "minimum": 1, "default": 0})]
        )
        assert [p.path for p in problems] == ["features/0/json_schema/default"]

    def test_nested_default_problem_is_located_inside_the_default(self) -> None:
        schema = {
            "type": "object",
            "properties": {"band": {"type": "array", "items": {"type": "number"}}},
            "default": {"band": [1, "two"]},
        }
        problems = resolution.check_definitions([feature("f", schema)])
        assert [p.path for p in problems] == ["features/0/json_schema/default/band/1"]

    def test_default_is_not_checked_when_the_schema_itself_is_invalid(self) -> None:
        problems = resolution.check_definitions([feature("f", {"type": "strin", "default": 1})])
        assert [p.path for p in problems] == ["features/0/json_schema/type"]

    def test_problems_of_several_features_are_all_reported(self) -> None:
        problems = resolution.check_definitions(
            [
                feature("a", {"type": "strin"}),
                feature("b", {"type": "integer", "default": "x"}),
                feature("a", {}),
            ]
        )
        assert [p.path for p in problems] == [
            "features/0/json_schema/type",
            "features/1/json_schema/default",
            "features/2/name",
        ]

    def test_ensure_valid_definitions_raises_unprocessable_with_the_locations(self) -> None:
        with pytest.raises(Unprocessable) as caught:
            resolution.ensure_valid_definitions([ROUTE, feature("bad", {"minimum": "x"})])
        assert caught.value.message.startswith("invalid feature definitions: ")
        assert "features/1/json_schema/minimum: " in caught.value.message
        assert caught.value.errors[0] == ErrorDetail(
            "features/1/json_schema/minimum", caught.value.errors[0].message
        )
