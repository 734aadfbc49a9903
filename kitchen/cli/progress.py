"""What ``kitchen run``/``resume`` show while training: a progress bar on a terminal (step/total,
loss, lr, tokens/s, ETA), plain lines otherwise, and a summary at the end. All on stderr; the
run id alone goes to stdout, first."""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from typing import Any

from kitchen.runner import Reporter
from kitchen.state import RunState
from kitchen.workflow import Stage


class CliReporter(Reporter):
    def __init__(self, run_id: str, home: str, *, print_id: bool = True) -> None:
        self.run_id = run_id
        self.home = home
        self.print_id = print_id
        self.tty = sys.stderr.isatty()
        self.bar: Any = None
        self.total: int | None = None
        self.t0 = time.monotonic()
        self.last_line = 0.0

    def created(self, state: RunState) -> None:
        if self.print_id:
            print(self.run_id, flush=True)

    def started(self, state: RunState) -> None:
        self.t0 = time.monotonic()

    def stage_done(self, stage: Stage, outputs: Mapping[str, Any], state: RunState) -> None:
        if stage.name == "build_supervised_dataset":
            self.total = int(outputs.get("total_steps", 0)) or None
            if self.tty and self.total:
                from tqdm import tqdm

                self.bar = tqdm(
                    total=self.total,
                    initial=state.step,
                    unit="step",
                    file=sys.stderr,
                    dynamic_ncols=True,
                )
        elif stage.name == "evaluate":
            m = outputs.get("metrics", {})
            nll, acc = m.get("test/nll", float("nan")), m.get("test/accuracy", float("nan"))
            self._line(f"eval  test/nll {nll:.4f}  test/accuracy {acc:.3f}")
        elif stage.name == "save_checkpoint":
            self._line(f"checkpoint {outputs.get('name')} saved")
        for key, m in outputs.get("steps", {}).items():
            self._step(int(key), m)

    def _step(self, step: int, m: Mapping[str, Any]) -> None:
        loss, lr, tps = (
            m.get("train_mean_nll", 0.0),
            m.get("learning_rate", 0.0),
            m.get("tokens_per_s", 0.0),
        )
        if self.bar is not None:
            self.bar.n = step + 1
            self.bar.set_postfix_str(f"loss {loss:.4f} lr {lr:.2e} tok/s {tps:,.0f}", refresh=True)
            return
        done = step + 1
        eta = ""
        if self.total:
            rate = done / max(time.monotonic() - self.t0, 1e-9)
            eta = f"  eta {max(self.total - done, 0) / max(rate, 1e-9):.0f}s"
        total = f"/{self.total}" if self.total else ""
        print(
            f"step {done}{total}  loss {loss:.4f}  lr {lr:.2e}  tok/s {tps:,.0f}{eta}",
            file=sys.stderr,
            flush=True,
        )

    def _line(self, text: str) -> None:
        if self.bar is not None:
            self.bar.write(text, file=sys.stderr)
        else:
            print(text, file=sys.stderr, flush=True)

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
        evals = state.eval_metrics
        if evals:
            first, last = evals[min(evals)], evals[max(evals)]
            for key in ("test/nll", "test/accuracy"):
                if key in first and key in last:
                    before, after = f"{first[key]:.4f}", f"{last[key]:.4f}"
                    print(
                        f"  {key}: {before} (step {min(evals)}) -> {after} (step {max(evals)})",
                        file=out,
                    )
        last_train = state.last_metrics()
        if "train_mean_nll" in last_train:
            print(f"  train_mean_nll (last step): {last_train['train_mean_nll']:.4f}", file=out)
        if state.adapter_uri:
            print(f"  adapter: {self.home}/{state.adapter_uri}", file=out)
        if state.status in ("interrupted", "running"):
            print(f"  continue with: kitchen resume {self.run_id}", file=out)
        print(f"  history: kitchen replay {self.run_id}", file=out)
