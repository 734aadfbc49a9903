"""kitchen's own cost per training step, with the model's work taken out.

``bench/overhead.py`` compares whole steps, so on a shared machine its ratio moves by a few
percent from run to run. This measures the part kitchen adds, alone: ``kitchen run sl_basic``
with the local backend's ``forward_backward`` and ``optim_step`` answering at once (a finished
future, a fixed loss), so every step is only the runner's work: stage events, one group
commit, spans, the state machine, the fold, ``metrics.jsonl``. Everything else is the real
thing: the real database, the real OpenTelemetry SDK, the real workflow.

Reported per step: wall time and the main thread's CPU time (``time.thread_time``: what
competes with torch for the cores). On Postgres the server's own work is in the wall time,
not in the CPU time.

    python bench/runner_cost.py [--steps 300] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import warnings
from concurrent.futures import Future
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))


def _done(value: Any) -> Future[Any]:
    future: Future[Any] = Future()
    future.set_result(value)
    return future


def instant_backend() -> None:
    """Make the local backend's training calls return at once (this process only)."""
    from kitchen.adapters.local_torch.client import LocalTrainingClient
    from kitchen.types import ForwardBackwardOutput, OptimStepResponse

    def forward_backward(self: Any, data: Any, loss_fn: Any, *a: Any, **k: Any) -> Any:
        return _done(ForwardBackwardOutput(loss_fn_outputs=[], metrics={"loss:sum": 1.0}))

    def optim_step(self: Any, params: Any) -> Any:
        return _done(OptimStepResponse())

    LocalTrainingClient.forward_backward = forward_backward  # type: ignore[method-assign]
    LocalTrainingClient.optim_step = optim_step  # type: ignore[method-assign]


from overhead import logged_steps  # noqa: E402 - bench/ is put on the path above


class LoopClock:
    """Wall and main-thread CPU time from the first set_epoch to the last step's metrics."""

    def __init__(self) -> None:
        self.wall0 = self.cpu0 = self.wall1 = self.cpu1 = 0.0
        self.timing = False
        self.steps = 0

    def created(self, state: Any) -> None: ...

    def started(self, state: Any, workflow: Any = None) -> None: ...

    def stage_done(self, stage: Any, outputs: Any, state: Any) -> None:
        if stage.name == "set_epoch" and not self.timing:
            self.timing = True
            self.wall0, self.cpu0 = time.perf_counter(), time.thread_time()
        logged = logged_steps(outputs)
        if stage.name == "log_step_metrics" and logged:
            self.steps += logged
            self.wall1, self.cpu1 = time.perf_counter(), time.thread_time()

    def finished(self, state: Any, code: int) -> None: ...


def one_run(steps: int, db_url: str, home: Path, tag: str) -> tuple[float, float]:
    from kitchen import launch
    from kitchen.store import open_store

    os.environ["KITCHEN_HOME"] = str(home)
    settings = [
        f"max_steps={steps}",
        "num_epochs=1000",
        "save_every=0",
        "eval_every=0",
        "eval_examples=8",
        "eval_max_tokens=4",
    ]
    prepared = launch.prepare("sl_basic", settings, None)
    store = open_store(db_url)
    clock = LoopClock()
    code = launch.start(prepared, store, f"runner-cost-{tag}", clock)  # type: ignore[arg-type]
    store.close()
    assert code == 0 and clock.steps == steps, (code, clock.steps)
    return (clock.wall1 - clock.wall0) / steps, (clock.cpu1 - clock.cpu0) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print the medians as one JSON line")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    instant_backend()
    from overhead import _fresh_pg_schema

    pg = os.environ.get("KITCHEN_TEST_POSTGRES_URL")
    results: dict[str, list[tuple[float, float]]] = {"sqlite": []}
    if pg:
        results["postgres"] = []
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        for r in range(args.repeats):
            home = root / f"s{r}"
            results["sqlite"].append(
                one_run(args.steps, f"sqlite:///{home}/kitchen.db", home, f"s{r}")
            )
            if pg:
                url = _fresh_pg_schema(pg)
                results["postgres"].append(one_run(args.steps, url, root / f"p{r}", f"p{r}"))
    if args.json:
        medians = {
            name: {
                "wall_ms": statistics.median(v[0] for v in vals) * 1000,
                "cpu_ms": statistics.median(v[1] for v in vals) * 1000,
            }
            for name, vals in results.items()
        }
        print(json.dumps(medians))
        return
    print(f"\n{args.steps} steps x {args.repeats} repeats, instant backend")
    print("| database | wall ms/step (median) | main-thread CPU ms/step (median) |")
    print("|---|---|---|")
    for name, vals in results.items():
        wall = statistics.median(v[0] for v in vals) * 1000
        cpu = statistics.median(v[1] for v in vals) * 1000
        print(f"| {name} | {wall:.2f} | {cpu:.2f} |")


if __name__ == "__main__":
    main()
