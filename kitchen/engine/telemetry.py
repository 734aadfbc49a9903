"""OpenTelemetry set-up: a span per attempt, a child span per stage, and training metrics.

Exporters come from the standard variables: ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or the
``..._TRACES_/..._METRICS_`` variants) turns on OTLP over HTTP/protobuf; ``OTEL_TRACES_EXPORTER``
and ``OTEL_METRICS_EXPORTER`` may name ``otlp``, ``console`` or ``none``; ``--trace console``
prints spans to stderr (stdout carries the run id). Spans are exported in batches on a
background thread, so an unreachable collector never blocks a step; at exit we wait at most
``SHUTDOWN_TIMEOUT_S`` for the last batch.

The provider is private to each :class:`Telemetry` (never the global one), so tests can attach
an in-memory exporter, and ``kitchen replay`` simply never creates one: replay emits no spans.
With no exporter or processor at all, stage spans and step metrics are not built (nothing
would receive them); the attempt span always is, since its ids are recorded in the log.
Secrets never become attributes: only ids and counters (``kitchen.run_id``, ``.attempt``,
``.stage``, ``.step``, ``.epoch``, ``.event_seq``).
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.trace import (
    INVALID_SPAN,
    Link,
    Span,
    SpanContext,
    Status,
    StatusCode,
    TraceFlags,
)

SHUTDOWN_TIMEOUT_S = 3.0
EXPORT_TIMEOUT_S = 2.0


def _wants(kind: str, exporter_var: str, endpoint_vars: Sequence[str]) -> set[str]:
    names = {n.strip() for n in os.environ.get(exporter_var, "").split(",") if n.strip()}
    if not names and any(os.environ.get(v) for v in endpoint_vars):
        names = {"otlp"}
    return names - {"none"}


def _export_timeout() -> float:
    raw = os.environ.get("OTEL_EXPORTER_OTLP_TIMEOUT")
    try:
        return min(float(raw) / 1000.0, EXPORT_TIMEOUT_S) if raw else EXPORT_TIMEOUT_S
    except ValueError:
        return EXPORT_TIMEOUT_S


class Telemetry:
    def __init__(
        self,
        *,
        trace_console: bool = False,
        span_processors: Sequence[SpanProcessor] = (),
        metric_readers: Sequence[MetricReader] = (),
    ) -> None:
        resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", "kitchen")})
        self.tracer_provider = TracerProvider(resource=resource)
        processors = [*span_processors, *self._env_span_processors(trace_console)]
        for proc in processors:
            self.tracer_provider.add_span_processor(proc)
        readers = [*metric_readers, *self._env_metric_readers()]
        # With nothing to receive them, stage spans and step metrics are not built at all
        # (a stage span cost about 27 µs, a fifth of the runner's own work on a fast step);
        # the attempt span is always real, since its ids go into the log.
        self.recording = bool(processors)
        self.metering = bool(readers)
        self.meter_provider = MeterProvider(resource=resource, metric_readers=readers)
        self.tracer = self.tracer_provider.get_tracer("kitchen")
        meter = self.meter_provider.get_meter("kitchen")
        self._loss = meter.create_histogram(
            "kitchen.train.loss", description="the workflow's step metric, per step"
        )
        self._metric = meter.create_gauge(
            "kitchen.train.metric", description="the workflow's progress metrics (attribute: name)"
        )

    # ---------------------------------------------------------------- exporters

    @staticmethod
    def _env_span_processors(console: bool) -> list[SpanProcessor]:
        from opentelemetry.sdk.trace.export import (
            BatchSpanProcessor,
            ConsoleSpanExporter,
            SimpleSpanProcessor,
        )

        names = _wants(
            "traces",
            "OTEL_TRACES_EXPORTER",
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
        )
        procs: list[SpanProcessor] = []
        if console or "console" in names:
            procs.append(SimpleSpanProcessor(ConsoleSpanExporter(out=sys.stderr)))
        if "otlp" in names:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            timeout = _export_timeout()
            procs.append(
                BatchSpanProcessor(
                    OTLPSpanExporter(timeout=timeout), export_timeout_millis=timeout * 1000
                )
            )
        return procs

    @staticmethod
    def _env_metric_readers() -> list[MetricReader]:
        names = _wants(
            "metrics",
            "OTEL_METRICS_EXPORTER",
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"),
        )
        if "otlp" not in names:
            return []
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

        timeout = _export_timeout()
        return [
            PeriodicExportingMetricReader(
                OTLPMetricExporter(timeout=timeout), export_timeout_millis=timeout * 1000
            )
        ]

    # ---------------------------------------------------------------- spans

    @contextmanager
    def attempt_span(
        self, run_id: str, attempt: int, previous: tuple[str, str] | None = None
    ) -> Iterator[Span]:
        """The root span of one attempt; a resumed attempt links to the previous one's span."""
        links = []
        if previous is not None:
            ctx = SpanContext(
                trace_id=int(previous[0], 16),
                span_id=int(previous[1], 16),
                is_remote=True,
                trace_flags=TraceFlags(TraceFlags.SAMPLED),
            )
            links.append(Link(ctx, {"kitchen.link": "previous_attempt"}))
        attrs: dict[str, str | int] = {"kitchen.run_id": run_id, "kitchen.engine.attempt": attempt}
        with self.tracer.start_as_current_span(
            "attempt", attributes=attrs, links=links, record_exception=True
        ) as span:
            yield span

    def stage_span(self, stage: str, attributes: Mapping[str, Any]) -> Span:
        """Start a stage span as a child of the current attempt span; the caller ends it.
        A span nobody will receive (no exporter or processor) is the no-op ``INVALID_SPAN``."""
        if not self.recording:
            return INVALID_SPAN
        return self.tracer.start_span(stage, attributes=dict(attributes))

    @staticmethod
    def ids(span: Span) -> tuple[str, str]:
        ctx = span.get_span_context()
        return f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}"

    @staticmethod
    def end_with_error(span: Span, exc: BaseException) -> None:
        span.record_exception(exc)
        span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
        span.end()

    # ---------------------------------------------------------------- metrics

    def record_step(
        self, metrics: Mapping[str, Any], step_metric: str | None, shown: Sequence[str] = ()
    ) -> None:
        """A step's metrics: the workflow's step metric as ``kitchen.train.loss``, the metrics
        its progress line shows as ``kitchen.train.metric{name=…}``. An OTel histogram takes
        no negative values (a policy-gradient loss can be one): those go to the gauge only."""
        if not self.metering:
            return
        v = metrics.get(step_metric) if step_metric is not None else None
        if v is not None and float(v) >= 0:
            self._loss.record(float(v))
        for name in shown:
            if (v := metrics.get(name)) is not None:
                self._metric.set(float(v), {"name": name})

    # ---------------------------------------------------------------- shutdown

    def shutdown(self, timeout_s: float = SHUTDOWN_TIMEOUT_S) -> None:
        """Flush and stop exporters, waiting at most ``timeout_s`` even if a collector hangs."""

        def stop() -> None:
            try:
                self.tracer_provider.shutdown()
                self.meter_provider.shutdown(timeout_millis=timeout_s * 1000)
            except Exception:  # exporter failures must never fail a run
                pass

        worker = threading.Thread(target=stop, name="kitchen-otel-shutdown", daemon=True)
        worker.start()
        worker.join(timeout_s)
