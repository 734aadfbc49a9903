"""kitchen's own cost per training step, with the model's work taken out.

``bench/overhead.py`` compares whole steps, so on a shared machine its ratio moves by a few
percent from run to run. This measures the part kitchen adds, alone: ``kitchen run sl_basic``
with the local backend's ``forward_backward`` and ``optim_step`` answering at once (a finished
future, a fixed loss), so every step is only the runner's work: stage events, one group
commit, spans, the state machine, the fold, ``metrics.jsonl``. Everything else is the real
thing: the real database, the real OpenTelemetry SDK, the real workflow.

Reported per step: wall time, the main thread's CPU time, and the CPU time of every Python
thread of the process (the main thread, the store's and OpenTelemetry's threads, the backend's
worker, which does nothing here; torch's own thread pool is not a Python thread and is not
counted): what competes with torch for the cores. On Postgres the server's own work is in the
wall time, not in the CPU time.

``--stub-ms 20`` instead gives the backend a step that takes that long and releases the
interpreter lock (``forward_backward`` and ``optim_step`` each sleep half of it on the
backend's worker thread, as a GPU step would leave the CPU free), and times the same stub
alone, driven by a plain loop that submits ahead as sl_basic does. The ratio is what kitchen
adds to a fast step when its own work can overlap the backend's.

    python bench/runner_cost.py [--steps 300] [--repeats 3] [--stub-ms 20]
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


def stub_backend(step_ms: float) -> None:
    """Make the local backend's training calls take ``step_ms`` a step on its worker thread,
    sleeping (the interpreter lock released), with fixed results (this process only)."""
    from kitchen.adapters.local_torch.client import LocalTrainingClient
    from kitchen.types import ForwardBackwardOutput, OptimStepResponse

    half = step_ms / 2000

    def fb_work(self: Any, data: Any, loss_fn: Any, config: Any) -> Any:
        time.sleep(half)
        return ForwardBackwardOutput(loss_fn_outputs=[], metrics={"loss:sum": 1.0})

    def optim_work(self: Any, params: Any) -> Any:
        time.sleep(half)
        return OptimStepResponse()

    LocalTrainingClient._forward_backward = fb_work  # type: ignore[method-assign]
    LocalTrainingClient._optim_step = optim_work  # type: ignore[method-assign]


def stub_alone(steps: int, step_ms: float) -> float:
    """Wall time a step of the stub backend driven by a plain submit-ahead loop."""
    from concurrent.futures import ThreadPoolExecutor

    half = step_ms / 2000
    pool = ThreadPoolExecutor(max_workers=1)
    pending: list[tuple[Future[Any], Future[Any]]] = []
    t0 = time.perf_counter()
    for _ in range(steps):
        pending.append((pool.submit(time.sleep, half), pool.submit(time.sleep, half)))
        if len(pending) > 1:
            for f in pending.pop(0):
                f.result()
    for pair in pending:
        for f in pair:
            f.result()
    wall = (time.perf_counter() - t0) / steps
    pool.shutdown()
    return wall


def python_threads_cpu() -> float:
    """CPU seconds of every live Python thread of this process."""
    import threading

    total = 0.0
    for thread in threading.enumerate():
        if thread.ident is None:
            continue
        try:
            total += time.clock_gettime(time.pthread_getcpuclockid(thread.ident))
        except (OSError, ProcessLookupError):
            continue  # ended meanwhile
    return total


from overhead import logged_steps  # noqa: E402 - bench/ is put on the path above


class LoopClock:
    """Wall, main-thread and all-Python-threads CPU time from the first set_epoch to the last
    step's metrics."""

    def __init__(self, steps: int) -> None:
        self.wall0 = self.cpu0 = self.wall1 = self.cpu1 = 0.0
        self.all0 = self.all1 = 0.0
        self.target = steps  # the clocks are read at the start and after the last step only
        self.timing = False
        self.steps = 0

    def created(self, state: Any) -> None: ...

    def started(self, state: Any, workflow: Any = None) -> None: ...

    def stage_done(self, stage: Any, outputs: Any, state: Any) -> None:
        if stage.name == "set_epoch" and not self.timing:
            self.timing = True
            self.wall0, self.cpu0 = time.perf_counter(), time.thread_time()
            self.all0 = python_threads_cpu()
        logged = logged_steps(outputs)
        if stage.name == "log_step_metrics" and logged:
            self.steps += logged
            if self.steps >= self.target:
                self.wall1, self.cpu1 = time.perf_counter(), time.thread_time()
                self.all1 = python_threads_cpu()

    def finished(self, state: Any, code: int) -> None: ...


def one_run(steps: int, db_url: str, home: Path, tag: str) -> tuple[float, float, float]:
    try:
        from kitchen.engine import launch
    except ImportError:  # a commit from before kitchen/engine/ (bench/ab.py measures those too)
        from kitchen import launch  # type: ignore[no-redef]
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
    clock = LoopClock(steps)
    code = launch.start(prepared, store, f"runner-cost-{tag}", clock)  # type: ignore[arg-type]
    store.close()
    assert code == 0 and clock.steps == steps, (code, clock.steps)
    return (
        (clock.wall1 - clock.wall0) / steps,
        (clock.cpu1 - clock.cpu0) / steps,
        (clock.all1 - clock.all0) / steps,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--stub-ms",
        type=float,
        default=0.0,
        help="a backend step of this many ms that releases the interpreter lock (0: instant)",
    )
    parser.add_argument("--json", action="store_true", help="print the medians as one JSON line")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    if args.stub_ms > 0:
        stub_backend(args.stub_ms)
    else:
        instant_backend()
    from overhead import _fresh_pg_schema

    pg = os.environ.get("KITCHEN_TEST_POSTGRES_URL")
    results: dict[str, list[tuple[float, ...]]] = {"sqlite": []}
    if pg:
        results["postgres"] = []
    alone: list[float] = []
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        for r in range(args.repeats):
            if args.stub_ms > 0:
                alone.append(stub_alone(args.steps, args.stub_ms))
            home = root / f"s{r}"
            results["sqlite"].append(
                one_run(args.steps, f"sqlite:///{home}/kitchen.db", home, f"s{r}")
            )
            if pg:
                url = _fresh_pg_schema(pg)
                results["postgres"].append(one_run(args.steps, url, root / f"p{r}", f"p{r}"))
        if args.stub_ms > 0:
            alone.append(stub_alone(args.steps, args.stub_ms))
    medians = {
        name: {
            "wall_ms": statistics.median(v[0] for v in vals) * 1000,
            "cpu_ms": statistics.median(v[1] for v in vals) * 1000,
            "all_threads_cpu_ms": statistics.median(v[2] for v in vals) * 1000,
        }
        for name, vals in results.items()
    }
    if alone:
        stub = statistics.median(alone) * 1000
        for m in medians.values():
            m["stub_alone_ms"] = stub
            m["ratio_to_stub"] = m["wall_ms"] / stub
    if args.json:
        print(json.dumps(medians))
        return
    backend = f"stub backend ({args.stub_ms:g} ms a step)" if alone else "instant backend"
    print(f"\n{args.steps} steps x {args.repeats} repeats, {backend}")
    print(
        "| database | wall ms/step | main-thread CPU ms/step | all Python threads' CPU ms/step |"
        + (" stub alone ms/step | ratio |" if alone else "")
    )
    print("|---|---|---|---|" + ("---|---|" if alone else ""))
    for name, m in medians.items():
        row = f"| {name} | {m['wall_ms']:.2f} | {m['cpu_ms']:.2f} | {m['all_threads_cpu_ms']:.2f} |"
        if alone:
            row += f" {m['stub_alone_ms']:.2f} | {m['ratio_to_stub']:.3f} |"
        print(row)
    print("(medians of the repeats)")


if __name__ == "__main__":
    main()
