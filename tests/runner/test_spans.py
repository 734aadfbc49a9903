"""Spans: one per stage execution under the attempt's span, linked across attempts, none from
folding, and never a secret in them."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fakeflow import RUN_ID, FakeConfig, created, folded, identity, make_runner
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from pydantic import SecretStr

from kitchen.adapters.blobs import LocalBlobStore
from kitchen.engine.runner import EXIT_INTERRUPTED, EXIT_OK, StageContext
from kitchen.engine.telemetry import Telemetry
from kitchen.store import EventStore


def _hex_ids(span: ReadableSpan) -> tuple[str, str]:
    ctx = span.get_span_context()
    assert ctx is not None
    return f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}"


def _split(spans: tuple[ReadableSpan, ...]) -> tuple[list[ReadableSpan], list[ReadableSpan]]:
    attempts = [s for s in spans if s.name == "attempt"]
    stages = sorted((s for s in spans if s.name != "attempt"), key=lambda s: s.start_time or 0)
    return attempts, stages


def test_every_stage_execution_is_one_child_span_of_the_attempt(
    store: EventStore,
    home: Path,
    blobs: LocalBlobStore,
    telemetry: Telemetry,
    exporter: InMemorySpanExporter,
) -> None:
    config = FakeConfig(steps=3, save_every=2)
    runner = make_runner(store, home, config=config, blobs=blobs, telemetry=telemetry)
    assert runner.start(created(RUN_ID, config)) == EXIT_OK

    (attempt,), stages = _split(exporter.get_finished_spans())
    # (name, step, seq of its StageStarted), as in test_events.THREE_STEPS_SAVING_EVERY_TWO
    assert [
        (s.name, (s.attributes or {})["kitchen.step"], (s.attributes or {})["kitchen.event_seq"])
        for s in stages
    ] == [
        ("setup", 0, 3),
        ("get_batch", 0, 5),
        ("train", 0, 7),
        ("log_step_metrics", 0, 9),
        ("get_batch", 0, 11),
        ("train", 1, 13),
        ("log_step_metrics", 1, 15),
        ("save_checkpoint", 1, 17),
        ("get_batch", 1, 20),
        ("train", 2, 22),
        ("log_step_metrics", 2, 24),
        ("cleanup", 2, 26),
    ]
    started = [e for e in store.read(RUN_ID) if e.type == "StageStarted"]
    assert len(started) == len(stages)
    for span, event in zip(stages, started, strict=True):
        assert span.parent is not None
        assert span.parent.span_id == attempt.context.span_id
        assert span.context.trace_id == attempt.context.trace_id
        assert dict(span.attributes or {}) == {
            "kitchen.run_id": RUN_ID,
            "kitchen.engine.attempt": 1,
            "kitchen.stage": event.payload["stage"],
            "kitchen.step": event.payload["step"],
            "kitchen.epoch": 0,
            "kitchen.event_seq": event.seq,
        }
    assert attempt.parent is None
    assert dict(attempt.attributes or {}) == {"kitchen.run_id": RUN_ID, "kitchen.engine.attempt": 1}

    attempt_started = store.read(RUN_ID)[1]
    assert attempt_started.type == "AttemptStarted"
    trace_id, span_id = _hex_ids(attempt)
    assert (attempt_started.payload["trace_id"], attempt_started.payload["span_id"]) == (
        trace_id,
        span_id,
    )


def test_a_resumed_attempt_links_to_the_previous_attempts_span(
    store: EventStore, home: Path, telemetry: Telemetry, exporter: InMemorySpanExporter
) -> None:
    def interrupt(ctx: StageContext) -> None:
        os.kill(os.getpid(), signal.SIGINT)

    config = FakeConfig(steps=3)
    first = make_runner(
        store,
        home,
        config=config,
        hooks={("train", 1): interrupt},
        telemetry=telemetry,
        handle_signals=True,
    )
    assert first.start(created(RUN_ID, config)) == EXIT_INTERRUPTED
    (one,), _ = _split(exporter.get_finished_spans())
    exporter.clear()

    second = make_runner(store, home, config=config, telemetry=telemetry)
    assert second.resume(identity(config)) == EXIT_OK

    (two,), stages = _split(exporter.get_finished_spans())
    assert [link.context.span_id for link in two.links] == [one.context.span_id]
    assert two.links[0].context.trace_id == one.context.trace_id
    assert dict(two.links[0].attributes or {}) == {"kitchen.link": "previous_attempt"}
    assert {(s.attributes or {})["kitchen.engine.attempt"] for s in stages} == {2}
    assert all(s.parent is not None and s.parent.span_id == two.context.span_id for s in stages)

    attempt_ids = [
        (e.payload["trace_id"], e.payload["span_id"])
        for e in store.read(RUN_ID)
        if e.type == "AttemptStarted"
    ]
    assert attempt_ids == [_hex_ids(one), _hex_ids(two)]


def test_folding_the_log_emits_no_spans(
    store: EventStore, home: Path, telemetry: Telemetry, exporter: InMemorySpanExporter
) -> None:
    config = FakeConfig(steps=2)
    runner = make_runner(store, home, config=config, telemetry=telemetry)
    assert runner.start(created(RUN_ID, config)) == EXIT_OK
    produced = len(exporter.get_finished_spans())
    assert produced == 1 + 8  # the attempt, setup, two steps of three stages, cleanup

    state = folded(store)
    telemetry.tracer_provider.force_flush()

    assert state.status == "completed"
    assert len(exporter.get_finished_spans()) == produced


def _strings(spans: tuple[ReadableSpan, ...]) -> Iterator[str]:
    """Every text a span carries to a collector."""

    def values(attrs: Any) -> Iterator[str]:
        for key, value in dict(attrs or {}).items():
            yield str(key)
            yield str(value)

    for span in spans:
        yield span.name
        yield from values(span.attributes)
        yield from values(span.resource.attributes)
        yield str(span.status.description)
        for event in span.events:
            yield event.name
            yield from values(event.attributes)
        for link in span.links:
            yield from values(link.attributes)


def test_no_secret_of_the_config_reaches_a_span(
    store: EventStore, home: Path, telemetry: Telemetry, exporter: InMemorySpanExporter
) -> None:
    secret = "sk-live-0123456789abcdef"
    config = FakeConfig(steps=2, api_key=SecretStr(secret))

    def fail(ctx: StageContext) -> None:
        raise RuntimeError(f"upstream refused the request with config {ctx.config}")

    runner = make_runner(
        store, home, config=config, telemetry=telemetry, hooks={("train", 1): fail}
    )
    runner.start(created(RUN_ID, config))

    spans = exporter.get_finished_spans()
    assert len(spans) == 1 + 6  # the attempt, setup, step 0, get_batch and train of step 1
    texts = list(_strings(spans))
    assert any("upstream refused" in t for t in texts)  # the failure did reach the spans
    assert not [t for t in texts if secret in t]
    assert not [e.payload_json for e in store.read(RUN_ID) if secret in e.payload_json]
    assert store.read(RUN_ID)[0].payload["config"]["api_key"] == "**********"


def test_a_stage_stopped_at_once_still_ends_its_span(
    store: EventStore, home: Path, telemetry: Telemetry, exporter: InMemorySpanExporter
) -> None:
    """A second Ctrl-C stops a stuck stage at once: its span must still say which one it was."""

    def stuck(ctx: StageContext) -> None:
        raise KeyboardInterrupt

    config = FakeConfig(steps=3)
    runner = make_runner(
        store, home, config=config, telemetry=telemetry, hooks={("train", 1): stuck}
    )
    with pytest.raises(KeyboardInterrupt):
        runner.start(created(RUN_ID, config))

    (attempt,), stages = _split(exporter.get_finished_spans())
    last = stages[-1]
    assert (last.name, (last.attributes or {})["kitchen.step"]) == ("train", 1)
    assert last.status.status_code is StatusCode.ERROR
    assert [e.name for e in last.events] == ["exception"]
    # The attempt span ends too; OpenTelemetry leaves a BaseException's status unset there.
    assert last.parent is not None and last.parent.span_id == attempt.context.span_id
