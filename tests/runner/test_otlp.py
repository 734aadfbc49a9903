"""OTLP over HTTP: spans and metrics reach a real receiver on 127.0.0.1, and a collector that
is not there costs the run (and its shutdown) no more than a few seconds."""

from __future__ import annotations

import gzip
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from fakeflow import RUN_ID, FakeConfig, created, make_runner
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from kitchen.cli import main
from kitchen.engine.runner import EXIT_OK
from kitchen.engine.telemetry import Telemetry
from kitchen.store import EventStore


class Receiver(ThreadingHTTPServer):
    """Accepts OTLP/HTTP exports and keeps each request's path and (decompressed) body."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.received: list[tuple[str, bytes]] = []
        self.lock = threading.Lock()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def bodies(self, path: str) -> list[bytes]:
        with self.lock:
            return [body for p, body in self.received if p == path]


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        with self.server.lock:
            self.server.received.append((self.path, body))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the test reads what was received, not the access log."""


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_spans_and_metrics_reach_an_otlp_http_collector(
    store: EventStore, home: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint)
    telemetry = Telemetry()
    config = FakeConfig(steps=2)
    code = make_runner(store, home, config=config, telemetry=telemetry).start(
        created(RUN_ID, config)
    )
    telemetry.shutdown()

    assert code == EXIT_OK
    names: list[str] = []
    for body in receiver.bodies("/v1/traces"):
        request = ExportTraceServiceRequest.FromString(body)
        for resource in request.resource_spans:
            for scope in resource.scope_spans:
                names += [span.name for span in scope.spans]
    assert sorted(names) == sorted(
        ["attempt", "setup", "cleanup"] + ["get_batch", "train", "log_step_metrics"] * 2
    )

    metrics: set[str] = set()
    for body in receiver.bodies("/v1/metrics"):
        request_m = ExportMetricsServiceRequest.FromString(body)
        for resource_m in request_m.resource_metrics:
            for scope_m in resource_m.scope_metrics:
                metrics |= {m.name for m in scope_m.metrics}
    assert "kitchen.train.loss" in metrics


def _closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (connections are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never answers (a collector that hangs)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(16)
        yield int(s.getsockname()[1])


@pytest.mark.parametrize("collector", ["refused", "silent"])
def test_an_unreachable_collector_does_not_hold_up_the_run(
    store: EventStore,
    home: Path,
    monkeypatch: pytest.MonkeyPatch,
    collector: str,
    request: pytest.FixtureRequest,
) -> None:
    port = _closed_port() if collector == "refused" else request.getfixturevalue("silent_port")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{port}")
    t0 = time.monotonic()
    telemetry = Telemetry()
    config = FakeConfig(steps=3)
    code = make_runner(store, home, config=config, telemetry=telemetry).start(
        created(RUN_ID, config)
    )
    ran = time.monotonic() - t0
    telemetry.shutdown()
    total = time.monotonic() - t0

    assert code == EXIT_OK
    assert ran < 4.0, f"the run took {ran:.1f}s"
    assert total < 8.0, f"the run and shutdown took {total:.1f}s"


def test_kitchen_replay_sends_nothing_to_the_collector(
    db_url: str,
    store: EventStore,
    home: Path,
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = FakeConfig(steps=2)
    assert make_runner(store, home, config=config).start(created(RUN_ID, config)) == EXIT_OK
    monkeypatch.setenv("KITCHEN_DB_URL", db_url)
    monkeypatch.setenv("KITCHEN_HOME", str(home))
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint)

    assert main(["replay", RUN_ID]) == 0

    assert "RunCompleted" in capsys.readouterr().out
    time.sleep(0.2)  # what a background exporter would have sent by now
    assert receiver.received == []
