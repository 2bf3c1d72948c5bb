"""Every operation of the served OpenAPI document, fuzzed with every schemathesis check,
as an admin and as a tenant, on SQLite and PostgreSQL (setup: tests/fuzz/target.py).

``make test`` runs a short deterministic slice; ``make fuzz`` the same tests at volume.
"""

from __future__ import annotations

from typing import Any

import hypothesis
import pytest
import schemathesis
from hypothesis.errors import FlakyStrategyDefinition

from tests.fuzz.target import APP, LONG, SCHEMA, SEED, FuzzTarget, shorten_long_poll

BATCH = 10


@SCHEMA.parametrize()
@pytest.mark.usefixtures("healed")
def test_operations_conform(
    case: schemathesis.Case, fuzz_target: FuzzTarget, identity: str
) -> None:
    """No 5xx; status codes, content types, headers and bodies as documented; schema-valid
    input accepted, schema-violating input refused; auth enforced; 405 with ``Allow``."""
    shorten_long_poll(case)
    case.call_and_validate(headers=fuzz_target.headers[identity])


def test_stateful_links(fuzz_target: FuzzTarget, identity: str) -> None:
    """Scenarios along the links (inferred, plus the job links of the document): create,
    then read, update, cancel or delete what was created, every answer checked.

    Scenarios run in batches. When a replayed scenario prefix draws differently because the
    API's state has moved on, Hypothesis abandons the batch (FlakyStrategyDefinition); that
    is no finding — schemathesis' own runner carries on too — so the next batch runs. A
    check failure, reproducible or not, fails the test.
    """
    headers = fuzz_target.headers[identity]
    finished = 0

    class Scenarios(SCHEMA.as_state_machine()):  # type: ignore[misc]
        def before_call(self, case: schemathesis.Case) -> None:
            shorten_long_poll(case)

        def get_call_kwargs(self, case: schemathesis.Case) -> dict[str, Any]:
            return {"headers": headers}

        def teardown(self) -> None:
            nonlocal finished
            finished += 1
            super().teardown()

    settings = SCHEMA.config.get_hypothesis_settings(phase="stateful")
    wanted = settings.max_examples
    before = APP.tally.copy()
    try:
        for batch in range(2 * (wanted // BATCH) + 2):
            if finished >= wanted:
                break
            batch_settings = hypothesis.settings(settings, max_examples=min(BATCH, wanted))
            try:
                hypothesis.seed(SEED + batch)(Scenarios).run(settings=batch_settings)
            except FlakyStrategyDefinition:
                continue
    finally:
        fuzz_target.seeder.heal_all()  # scenarios may have suspended, deactivated, departed…
    sent = APP.tally.since(before)
    assert finished >= wanted, f"{finished} of {wanted} scenarios ran"
    created = sum(n for (_, _, status), n in sent.answers.items() if status in (201, 202))
    # A tenant may create little (no clients, no models): with the slice's three scenarios
    # it can miss every create by chance, so depth is demanded of it at volume only.
    if LONG or identity == "admin":
        assert created, f"no scenario created anything: {sent.answers}"
