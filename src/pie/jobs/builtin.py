"""In-process implementations shipped with PIE (API.md §5.3).

Each receives the handler-protocol object (``job_id``, ``job_type``, ``input``,
``context`` …, without ``callback``) and returns the output object.

``demo_price_train`` / ``demo_price_predict`` are a small but real model pair (used by
`pie demo` and the tests): an ordinary-least-squares price model in pure Python. The
names carry a ``demo_`` prefix because built-ins cannot be shadowed by plugins, and a
plugin is the natural owner of a plain ``price_train``.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

MAX_SLEEP_SECONDS = 3600.0


def echo(job: dict[str, Any]) -> Any:
    """Returns its input unchanged."""
    return job.get("input")


class HandlerFailure(RuntimeError):
    """What ``fail`` raises: a handler error by design."""


def fail(job: dict[str, Any]) -> Any:
    """Always raises (``input.message`` becomes the error message)."""
    payload = job.get("input")
    message = payload.get("message") if isinstance(payload, dict) else None
    raise HandlerFailure(str(message or "the fail handler always fails"))


async def sleep(job: dict[str, Any]) -> Any:
    """Sleeps ``input.seconds`` (0 to 3600) without blocking, then returns them."""
    payload = job.get("input")
    raw = payload.get("seconds", 0) if isinstance(payload, dict) else 0
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        raise ValueError("input.seconds must be a number")
    if isinstance(raw, float) and math.isnan(raw):
        raise ValueError("input.seconds must be a number")
    # Clamp before converting: a huge JSON integer does not fit a float.
    seconds = float(min(max(raw, 0), MAX_SLEEP_SECONDS))
    await asyncio.sleep(seconds)
    return {"slept": seconds}


PRICE = "price"
SINGULAR_TOLERANCE = 1e-9
"""Relative pivot size below which the normal equations count as singular."""


def demo_price_train(job: dict[str, Any]) -> Any:
    """Demo price model: fits price = intercept + Σ coef·feature to ``input.rows`` (OLS).

    ``input.rows`` is a list of objects holding ``price`` and numeric features;
    ``input.features`` (optional) names the features to fit, else every numeric key of
    the first row is used. Returns ``{"intercept", "coefficients", "rows", "r2"}``.
    """
    payload = job.get("input")
    if not isinstance(payload, dict):
        raise ValueError("input must be an object with `rows`")
    rows = payload.get("rows")
    if not isinstance(rows, list) or not rows:
        raise ValueError("input.rows must be a non-empty list of objects with a `price`")
    if not all(isinstance(row, dict) for row in rows):
        raise ValueError("input.rows must contain objects only")
    names = _feature_names(payload.get("features"), rows[0])
    if len(rows) <= len(names):
        raise ValueError(
            f"input.rows has {len(rows)} rows: fitting {len(names)} features and an "
            f"intercept needs at least {len(names) + 1}"
        )
    ys = [_number(row.get(PRICE), f"input.rows[{i}].price") for i, row in enumerate(rows)]
    xs = [
        [_number(row.get(name), f"input.rows[{i}].{name}") for name in names]
        for i, row in enumerate(rows)
    ]
    intercept, coefficients = _least_squares(xs, ys, names)
    mean = sum(ys) / len(ys)
    predicted = [
        intercept + sum(c * x for c, x in zip(coefficients, row, strict=True)) for row in xs
    ]
    total = sum((y - mean) ** 2 for y in ys)
    residual = sum((y - p) ** 2 for y, p in zip(ys, predicted, strict=True))
    return {
        "intercept": intercept,
        "coefficients": dict(zip(names, coefficients, strict=True)),
        "rows": len(rows),
        "r2": 1.0 - residual / total if total > 0 else 1.0,
    }


def demo_price_predict(job: dict[str, Any]) -> Any:
    """Demo price model: prices ``input.features`` (over the service's features) with the fit.

    The fit is the version's ``training_output`` (from ``demo_price_train``); the
    features are ``context.service_features`` with ``input.features`` laid over them, so
    a service's resolved features feed the model and a caller can override any of them.
    """
    context = job.get("context")
    trained = context.get("training_output") if isinstance(context, dict) else None
    if not isinstance(trained, dict):
        raise ValueError(
            f"model version {job.get('model_version')} has no training_output: train it "
            "with demo_price_train before running inference"
        )
    intercept = _number(trained.get("intercept"), "training_output.intercept")
    coefficients = trained.get("coefficients")
    if not isinstance(coefficients, dict):
        raise ValueError("training_output.coefficients must be an object (name → number)")
    payload = job.get("input")
    given = payload.get("features") if isinstance(payload, dict) else None
    if given is not None and not isinstance(given, dict):
        raise ValueError("input.features must be an object (name → value)")
    service = context.get("service_features") if isinstance(context, dict) else None
    features = {**(service if isinstance(service, dict) else {}), **(given or {})}
    used: dict[str, float] = {}
    price = intercept
    for name, raw in coefficients.items():
        if name not in features:
            raise ValueError(
                f"feature {name!r} is missing: give it in input.features or as a service feature"
            )
        used[name] = _number(features[name], f"feature {name}")
        price += _number(raw, f"training_output.coefficients.{name}") * used[name]
    return {"price": round(price, 2), "model_version": job.get("model_version"), "features": used}


def _feature_names(chosen: Any, first: dict[str, Any]) -> list[str]:
    if chosen is None:
        # Sorted: PostgreSQL's JSONB does not keep key order, and the fit must not depend on it.
        return sorted(key for key, value in first.items() if key != PRICE and _is_number(value))
    if not isinstance(chosen, list) or not all(isinstance(name, str) for name in chosen):
        raise ValueError("input.features must be a list of feature names")
    if PRICE in chosen or len(set(chosen)) != len(chosen):
        raise ValueError("input.features must name distinct features other than `price`")
    return list(chosen)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _number(value: Any, where: str) -> float:
    if not _is_number(value):
        raise ValueError(f"{where} must be a number, got {value!r}")
    try:
        result = float(value)
    except OverflowError:
        raise ValueError(f"{where} is too large") from None
    if not math.isfinite(result):
        raise ValueError(f"{where} must be finite")
    return result


def _least_squares(
    xs: list[list[float]], ys: list[float], names: list[str]
) -> tuple[float, list[float]]:
    """Intercept and coefficients solving the normal equations exactly.

    Features are standardised first (zero mean, unit variance), so the system is well
    scaled whatever the units, and singularity is a plain relative pivot test.
    """
    n = len(ys)
    means = [sum(row[j] for row in xs) / n for j in range(len(names))]
    scales = [math.sqrt(sum((row[j] - means[j]) ** 2 for row in xs) / n) for j in range(len(names))]
    for name, mean, scale in zip(names, means, scales, strict=True):
        if scale <= SINGULAR_TOLERANCE * max(1.0, abs(mean)):
            raise ValueError(f"feature {name!r} is constant in input.rows: it cannot be fitted")
    zs = [[(row[j] - means[j]) / scales[j] for j in range(len(names))] for row in xs]
    y_mean = sum(ys) / n
    gram = [[sum(z[j] * z[k] for z in zs) for k in range(len(names))] for j in range(len(names))]
    moments = [
        sum(z[j] * (y - y_mean) for z, y in zip(zs, ys, strict=True)) for j in range(len(names))
    ]
    solution = _solve(gram, moments, names, tolerance=SINGULAR_TOLERANCE * n)
    coefficients = [b / scale for b, scale in zip(solution, scales, strict=True)]
    intercept = y_mean - sum(c * m for c, m in zip(coefficients, means, strict=True))
    return intercept, coefficients


def _solve(
    matrix: list[list[float]], rhs: list[float], names: list[str], *, tolerance: float
) -> list[float]:
    """Gaussian elimination with partial pivoting on a copy of ``matrix | rhs``."""
    size = len(rhs)
    rows = [[*matrix[i], rhs[i]] for i in range(size)]
    for col in range(size):
        pivot = max(range(col, size), key=lambda r: abs(rows[r][col]))
        if abs(rows[pivot][col]) < tolerance:
            # Columns are never swapped, so column `col` depends on the ones before it.
            raise ValueError(
                f"feature {names[col]!r} is a linear combination of the other features in "
                "input.rows: the fit has no unique solution"
            )
        rows[col], rows[pivot] = rows[pivot], rows[col]
        for r in range(col + 1, size):
            factor = rows[r][col] / rows[col][col]
            if factor:
                for c in range(col, size + 1):
                    rows[r][c] -= factor * rows[col][c]
    solution = [0.0] * size
    for r in range(size - 1, -1, -1):
        tail = sum(rows[r][c] * solution[c] for c in range(r + 1, size))
        solution[r] = (rows[r][size] - tail) / rows[r][r]
    return solution


NON_BLOCKING = frozenset({"echo", "fail"})
"""Built-ins that do no work (return or raise at once): the dispatcher calls them on the
event loop, as it already checks every output there; a thread hop would cost far more
than the call."""

BUILTINS = {
    "echo": echo,
    "fail": fail,
    "sleep": sleep,
    "demo_price_train": demo_price_train,
    "demo_price_predict": demo_price_predict,
}
