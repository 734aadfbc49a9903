"""What ``kitchen run``/``resume`` show while training: a progress bar on a terminal (step/total,
loss, lr, tokens/s, ETA), plain lines otherwise, and a summary at the end. All on stderr; the
run id alone goes to stdout, first."""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from typing import Any

from kitchen.engine.runner import Reporter
from kitchen.engine.state import RunState
from kitchen.errors import InfrastructureError
from kitchen.spec import Stage, Workflow
from kitchen.stage_api import CheckpointSaved, StageResult


class CliReporter(Reporter):
    def __init__(self, run_id: str, home: str, *, print_id: bool = True) -> None:
        from kitchen.cli.track import install_report_writer

        install_report_writer()  # a run that ends hands its HTML report to its trackers
        self.run_id = run_id
        self.home = home
        self.print_id = print_id
        self.tty = sys.stderr.isatty()
        self.bar: Any = None
        self.total: int | None = None
        self.t0 = time.monotonic()
        self.shown: tuple[str, ...] = ()
        self.summary: tuple[str, ...] = ()
        self.fault_line: str | None = None

    def created(self, state: RunState) -> None:
        if self.print_id:
            print(self.run_id, flush=True)

    def started(self, state: RunState, workflow: Workflow) -> None:
        self.t0 = time.monotonic()
        self.shown = workflow.progress_metrics
        self.summary = workflow.summary_metrics

    def stage_done(self, stage: Stage, result: StageResult, state: RunState) -> None:
        if result.total_steps is not None:
            self.total = int(result.total_steps) or None
            if self.tty and self.total and self.bar is None:
                from tqdm import tqdm

                self.bar = tqdm(
                    total=self.total,
                    initial=state.step,
                    unit="step",
                    file=sys.stderr,
                    dynamic_ncols=True,
                )
        if result.eval_metrics:
            shown = self.summary or tuple(result.eval_metrics)
            parts = [f"{k} {result.eval_metrics[k]:.4f}" for k in shown if k in result.eval_metrics]
            self._line("eval  " + "  ".join(parts))
        for event in result.events:
            if isinstance(event, CheckpointSaved):
                self._line(f"checkpoint {event.name} saved")
        for key, m in result.metrics.items():
            self._step(int(key), m)

    def _metrics_text(self, m: Mapping[str, Any]) -> str:
        """The workflow's progress metrics; the first, its loss, is labelled ``loss``."""
        parts = []
        for i, name in enumerate(self.shown):
            if name in m:
                parts.append(f"{'loss' if i == 0 else name} {_fmt(float(m[name]))}")
        return "  ".join(parts)

    def _step(self, step: int, m: Mapping[str, Any]) -> None:
        text = self._metrics_text(m)
        if self.bar is not None:
            self.bar.n = step + 1
            self.bar.set_postfix_str(text.replace("  ", " "), refresh=True)
            return
        done = step + 1
        eta = ""
        if self.total:
            rate = done / max(time.monotonic() - self.t0, 1e-9)
            eta = f"  eta {max(self.total - done, 0) / max(rate, 1e-9):.0f}s"
        total = f"/{self.total}" if self.total else ""
        print(f"step {done}{total}  {text}{eta}", file=sys.stderr, flush=True)

    def _line(self, text: str) -> None:
        if self.bar is not None:
            self.bar.write(text, file=sys.stderr)
        else:
            print(text, file=sys.stderr, flush=True)

    def fault(self, error: InfrastructureError, recorded: bool) -> None:
        text = str(error).splitlines()[0] if str(error) else type(error).__name__
        kind = error.fault if recorded else f"{error.fault}, not on record"
        self.fault_line = f"  fault ({kind}): {text}"

    def finished(self, state: RunState, code: int) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        out = sys.stderr
        print(
            f"run {self.run_id}: {state.status} after {state.step} steps "
            f"({time.monotonic() - self.t0:.1f}s)",
            file=out,
        )
        if state.error:
            print(f"  error: {state.error[0]}: {state.error[1]}", file=out)
        if self.fault_line is not None:
            print(self.fault_line, file=out)
        evals = state.eval_metrics
        if evals:
            first, last = evals[min(evals)], evals[max(evals)]
            for key in self.summary or tuple(last):
                if key in first and key in last:
                    before, after = f"{first[key]:.4f}", f"{last[key]:.4f}"
                    print(
                        f"  {key}: {before} (step {min(evals)}) -> {after} (step {max(evals)})",
                        file=out,
                    )
        last_train = state.last_metrics()
        loss = self.shown[0] if self.shown else None
        if loss is not None and loss in last_train:
            print(f"  {loss} (last step): {last_train[loss]:.4f}", file=out)
        if state.adapter_uri:
            print(f"  adapter: {self.home}/{state.adapter_uri}", file=out)
        if state.status in ("interrupted", "running"):
            print(f"  continue with: kitchen resume {self.run_id}", file=out)
        print(f"  history: kitchen replay {self.run_id}", file=out)


def _fmt(value: float) -> str:
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if value and abs(value) < 0.01:
        return f"{value:.2e}"
    return f"{value:.4f}"
