"""Fixtures for the runner's acceptance tests: a real SQLite store, a real blob folder, the
real OpenTelemetry SDK with its in-memory exporter, and the fake workflow in ``fakeflow.py``.

``fakeflow`` is also run as a script by the tests that need a process of their own, so it is a
plain module beside this file rather than part of a package; its folder is put on ``sys.path``
here so the test modules can import it.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from kitchen.adapters.blobs import LocalBlobStore
from kitchen.engine.telemetry import Telemetry
from kitchen.store import EventStore, open_store

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(autouse=True)
def _no_exporters_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Telemetry reads OTEL_* variables; a developer's own collector must not get test spans."""
    for name in (
        "OTEL_TRACES_EXPORTER",
        "OTEL_METRICS_EXPORTER",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


@pytest.fixture
def db_url(request: pytest.FixtureRequest) -> str:
    """The test's database: SQLite, unless the test is parametrized indirectly with
    ``["sqlite", "postgres"]`` because its outcome depends on how the database commits and
    locks."""
    kind = getattr(request, "param", "sqlite")
    return str(request.getfixturevalue(f"{kind}_url"))


@pytest.fixture
def store(db_url: str) -> Iterator[EventStore]:
    with open_store(db_url) as s:
        yield s


@pytest.fixture
def blobs(home: Path) -> LocalBlobStore:
    return LocalBlobStore(home)


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def telemetry(exporter: InMemorySpanExporter) -> Iterator[Telemetry]:
    t = Telemetry(span_processors=[SimpleSpanProcessor(exporter)])
    yield t
    t.shutdown()
