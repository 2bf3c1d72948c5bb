"""The built-in demo price model (API.md §5.3): fitting, pricing, and a run through PIE."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from pie.jobs.builtin import BUILTINS, demo_price_predict, demo_price_train
from pie.jobs.dispatcher import Dispatcher
from tests.jobs.factories import Models, finished, start_inference, start_training

POINTS = [(10, 0, 1.5), (20, 1, 0.0), (45, 2, 2.0), (80, 0, 1.0), (120, 3, 0.5), (60, 1, 3.0)]


def linear_rows(base: float = 20.0, per_km: float = 0.5, per_rival: float = -3.0) -> list[Any]:
    """Exact linear fares over three features (``season`` is a third, independent one)."""
    return [
        {
            "price": base + per_km * km + per_rival * rivals + 4.0 * season,
            "distance_km": km,
            "competitor_count": rivals,
            "season": season,
            "route": "ADL-KI",
        }
        for km, rivals, season in POINTS
    ]


def train(payload: Any) -> dict[str, Any]:
    output: dict[str, Any] = demo_price_train({"job_type": "training", "input": payload})
    return output


def predict(
    fit: dict[str, Any] | None,
    features: Any = None,
    service: dict[str, Any] | None = None,
) -> dict[str, Any]:
    payload = {} if features is None else {"features": features}
    job = {
        "job_type": "inference",
        "model_version": "7",
        "input": payload,
        "context": {"training_output": fit, "service_features": service},
    }
    output: dict[str, Any] = demo_price_predict(job)
    return output


FIT = {"intercept": 20.0, "coefficients": {"distance_km": 0.5, "competitor_count": -3.0}}


class TestTraining:
    def test_exact_linear_data_recovers_the_coefficients(self) -> None:
        fit = train({"rows": linear_rows()})
        assert fit["intercept"] == pytest.approx(20.0, abs=1e-9)
        assert fit["coefficients"] == {
            "competitor_count": pytest.approx(-3.0, abs=1e-9),
            "distance_km": pytest.approx(0.5, abs=1e-9),
            "season": pytest.approx(4.0, abs=1e-9),
        }
        assert list(fit["coefficients"]) == ["competitor_count", "distance_km", "season"]
        assert fit["rows"] == len(POINTS)
        assert fit["r2"] == pytest.approx(1.0)

    def test_non_numeric_keys_are_ignored_and_features_can_be_chosen(self) -> None:
        rows = linear_rows(per_rival=0.0)
        for row in rows:
            row["price"] -= 4.0 * row["season"]
        fit = train({"rows": rows, "features": ["distance_km"]})
        assert set(fit["coefficients"]) == {"distance_km"}
        assert fit["coefficients"]["distance_km"] == pytest.approx(0.5)
        assert fit["intercept"] == pytest.approx(20.0)

    def test_noisy_data_gives_the_least_squares_line(self) -> None:
        # y = 1 + 2x with residuals +1, -1, -1, +1 (orthogonal to 1 and x): the OLS fit
        # is exactly 1 + 2x and r² is 1 - 4 / SS_tot.
        xs, noise = [0, 1, 2, 3], [1, -1, -1, 1]
        rows = [{"price": 1 + 2 * x + e, "x": x} for x, e in zip(xs, noise, strict=True)]
        fit = train({"rows": rows})
        assert fit["intercept"] == pytest.approx(1.0)
        assert fit["coefficients"]["x"] == pytest.approx(2.0)
        prices = [row["price"] for row in rows]
        mean = sum(prices) / len(prices)
        assert fit["r2"] == pytest.approx(1 - 4 / sum((p - mean) ** 2 for p in prices))

    def test_without_features_the_fit_is_the_mean_price(self) -> None:
        fit = train({"rows": [{"price": 10}, {"price": 14}]})
        assert fit == {"intercept": 12.0, "coefficients": {}, "rows": 2, "r2": 0.0}

    @pytest.mark.parametrize(
        ("payload", "message"),
        [
            (None, "input must be an object"),
            ({}, "input.rows must be a non-empty list"),
            ({"rows": []}, "input.rows must be a non-empty list"),
            ({"rows": [1, 2]}, "objects only"),
            ({"rows": [{"x": 1}, {"x": 2}]}, r"input.rows\[0\].price must be a number"),
            ({"rows": [{"price": 1, "x": 1}, {"price": 2}]}, r"input.rows\[1\].x must be a number"),
            ({"rows": [{"price": True}]}, r"price must be a number, got True"),
            ({"rows": [{"price": 10**400}]}, "too large"),
            ({"rows": [{"price": float("nan")}]}, "must be finite"),
            ({"rows": [{"price": 1}], "features": "x"}, "list of feature names"),
            ({"rows": [{"price": 1}], "features": ["price"]}, "other than `price`"),
        ],
    )
    def test_bad_input_is_refused_clearly(self, payload: Any, message: str) -> None:
        with pytest.raises(ValueError, match=message):
            train(payload)

    def test_too_few_rows_for_the_parameters(self) -> None:
        rows = linear_rows()[:3]
        with pytest.raises(ValueError, match="3 rows: fitting 3 features and an intercept needs"):
            train({"rows": rows})

    def test_a_constant_feature_cannot_be_fitted(self) -> None:
        rows = [{**row, "season": 1} for row in linear_rows()]
        with pytest.raises(ValueError, match="feature 'season' is constant"):
            train({"rows": rows})

    def test_collinear_features_are_singular(self) -> None:
        rows = [{**row, "season": 2 * row["distance_km"] + 1} for row in linear_rows()]
        with pytest.raises(ValueError, match="'season' is a linear combination"):
            train({"rows": rows})


class TestPrediction:
    def test_prices_from_service_features_with_input_overrides(self) -> None:
        service = {"route": "ADL-KI", "distance_km": 40, "competitor_count": 1}
        assert predict(FIT, service=service) == {
            "price": 37.0,
            "model_version": "7",
            "features": {"distance_km": 40.0, "competitor_count": 1.0},
        }
        overridden = predict(FIT, {"competitor_count": 3}, service)
        assert overridden["price"] == 31.0
        assert overridden["features"]["distance_km"] == 40.0

    def test_without_service_features_the_input_is_enough(self) -> None:
        assert predict(FIT, {"distance_km": 10.123, "competitor_count": 0})["price"] == 25.06

    def test_a_version_without_training_output_is_refused(self) -> None:
        with pytest.raises(ValueError, match="model version 7 has no training_output"):
            predict(None, {"distance_km": 1, "competitor_count": 0})

    @pytest.mark.parametrize(
        ("fit", "features", "message"),
        [
            (FIT, {"distance_km": 1}, "feature 'competitor_count' is missing"),
            (FIT, {"distance_km": "far", "competitor_count": 0}, "feature distance_km must be"),
            (FIT, [1, 2], "input.features must be an object"),
            ({"intercept": "x", "coefficients": {}}, {}, "training_output.intercept"),
            ({"intercept": 1, "coefficients": [1]}, {}, "coefficients must be an object"),
        ],
    )
    def test_bad_inputs_are_refused_clearly(self, fit: Any, features: Any, message: str) -> None:
        with pytest.raises(ValueError, match=message):
            predict(fit, features)

    def test_both_are_registered_built_ins_with_descriptions(self) -> None:
        assert BUILTINS["demo_price_train"] is demo_price_train
        assert BUILTINS["demo_price_predict"] is demo_price_predict
        assert (demo_price_train.__doc__ or "").startswith("Demo price model: fits")
        assert (demo_price_predict.__doc__ or "").startswith("Demo price model: prices")


async def test_train_then_predict_through_pie(
    client: httpx.AsyncClient, admin: dict[str, str], models: Models, dispatcher: Dispatcher
) -> None:
    model_id = await models.create(
        training="demo_price_train", inference="demo_price_predict", status="pending"
    )
    job_id = await start_training(client, admin, model_id, {"rows": linear_rows()})
    training = await finished(client, admin, job_id)
    assert training["status"] == "success", training
    version = (await client.get(f"/v2/models/{model_id}/versions/1", headers=admin)).json()
    assert version["status"] == "active"
    assert version["training_output"] == training["output"]
    assert version["training_output"]["coefficients"]["distance_km"] == pytest.approx(0.5)

    features = {"distance_km": 40, "competitor_count": 1, "season": 0.5}
    job_id = await start_inference(client, admin, model_id, {"features": features})
    inference = await finished(client, admin, job_id)
    assert inference["status"] == "success", inference
    assert inference["output"]["price"] == pytest.approx(39.0)
    assert inference["output"]["model_version"] == "1"

    # The handler's error reaches the job, not a traceback.
    job_id = await start_inference(client, admin, model_id, {"features": {"distance_km": 1}})
    failed = await finished(client, admin, job_id)
    assert failed["status"] == "failure"
    assert failed["error"]["type"] == "ValueError"
    assert "competitor_count" in failed["error"]["message"]
