"""The fuzzed app: one per backend and test worker, migrated, seeded through the API.

PostgreSQL gets a database of its own: the shared test database has its tables truncated
by other tests between their items, which would wipe the seed.
"""

from __future__ import annotations

import json
import re
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from schemathesis.python import asgi

from pie.app import create_app
from pie.settings import Settings
from tests.conftest import temporary_postgres_database
from tests.fuzz.seed import Seeder
from tests.fuzz.target import (
    APP,
    DOCUMENT,
    IDS,
    MIN_REQUESTS,
    OPENAPI_PATH,
    SCHEMA,
    SEED,
    FuzzTarget,
    documented,
    identity_headers,
    unreached,
)

IDENTITIES = ("admin", "tenant")
fuzzed: set[str] = set()
"""Labels of the operations fuzzed in this process (the volume checks need them all)."""


@contextmanager
def database(backend: str, directory: Path, sqlite_template: Path) -> Iterator[str]:
    if backend == "postgres":
        with temporary_postgres_database(f"pie_fuzz_{uuid.uuid4().hex[:12]}", migrated=True) as url:
            yield url
    else:
        shutil.copyfile(sqlite_template, directory / "pie.db")
        yield f"sqlite:///{directory / 'pie.db'}"


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def fuzz_target(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    sqlite_template: Path,
) -> Iterator[FuzzTarget]:
    """The real app bound to the fuzzed schema, without its embedded dispatcher: jobs keep
    the states the seed and the fuzzer give them, so answers never depend on timing."""
    backend = str(request.param)
    directory = tmp_path_factory.mktemp(f"fuzz-{backend}")
    with database(backend, directory, sqlite_template) as url:
        settings = Settings(database_url=url, data_dir=directory / "data", metrics="admin")
        APP.bind(create_app(settings, dispatcher=False))
        try:
            with asgi.get_client(APP) as http:
                served = http.get(OPENAPI_PATH).json()
            assert served == json.loads(json.dumps(DOCUMENT)), "fuzzing another document"
            seeder = Seeder(SCHEMA, settings, IDS)
            APP.steering = seeder.seed()
            before = APP.tally.copy()
            headers = {i: identity_headers(settings, i, IDS["client_id"]) for i in IDENTITIES}
            yield FuzzTarget(backend, headers, seeder)
            sent = APP.tally.since(before)
        finally:
            # Schemathesis keeps an app's lifespan running until exit: end it with the data.
            asgi.shutdown_lifespans()
    if MIN_REQUESTS and fuzzed >= documented(DOCUMENT):
        assert sent.requests >= MIN_REQUESTS, f"{backend}: only {sent.requests} requests"
        missing = unreached(DOCUMENT, sent)
        assert not missing, f"{backend}: never a 2xx from {missing}"


@pytest.fixture
def healed(request: pytest.FixtureRequest, fuzz_target: FuzzTarget) -> Iterator[None]:
    """After an item, puts back what fuzzing its operation may have disabled."""
    yield
    operation = re.search(r"\[([A-Z]+ /[^\]]*)\]", request.node.name)
    if operation is not None:
        fuzzed.add(operation.group(1))
        fuzz_target.seeder.heal(operation.group(1))


@pytest.fixture(scope="session", params=IDENTITIES)
def identity(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The volume and the answers per documented operation (all of them without xdist)."""
    tally = APP.tally
    if not tally.requests:
        return
    write = terminalreporter.write_line
    terminalreporter.write_sep("-", f"schema fuzzing: {tally.requests} requests (seed {SEED})")
    operations = documented(DOCUMENT)
    answers: dict[str, dict[int, int]] = {}
    undeclared = 0
    for (method, route, status), count in tally.answers.items():
        label = f"{method} {route}"
        if label in operations:
            answers.setdefault(label, {})[status] = count
        else:
            undeclared += count
    for label, statuses in sorted(answers.items(), key=lambda item: item[0].split()[::-1]):
        write(f"{label}  " + ", ".join(f"{s}: {n}" for s, n in sorted(statuses.items())))
    write(f"undeclared methods and paths: {undeclared} answers (405/404, the schema fetch)")
