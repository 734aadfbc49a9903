"""kitchen from Python: start, resume and fork runs, list them, and read one back.

What the ``kitchen`` command does, from a notebook or a script, in this process (no ``kitchen``
process is started)::

    import kitchen.api as kt

    run = kt.run("sl_basic", max_steps=20, config={"adapters.training": "local_torch"})
    run.status, run.metrics[-1]["train_mean_nll"], run.adapter_path
    run.sample("What is the capital of France?")
    child = kt.fork(run, 10, learning_rate=1e-4)

The settings are those of the command line: ``KITCHEN_HOME``, ``KITCHEN_DB_URL`` and the other
``KITCHEN_*`` variables as the environment says at each call. Errors are the CLI's, raised:
a ``kitchen.errors.KitchenError`` (``ConfigError``, ``NotFound``, …) whose text is the line
the CLI prints and whose ``exit_code`` the code it exits with. A run that starts and does not
complete raises :class:`RunError` carrying its handle. Progress is a ``tqdm.auto`` bar (a widget
in Jupyter); Ctrl-C, or a notebook's interrupt, is SIGINT: the run stops after the stage in
flight and :class:`RunInterrupted` is raised (a second one stops at once).

This module imports nothing heavy until a function needs it: ``import kitchen.api`` loads
neither torch nor the training stack.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kitchen.errors import ConfigError, KitchenError

if TYPE_CHECKING:
    from kitchen.engine.runner import Reporter
    from kitchen.engine.state import RunState
    from kitchen.store import EventStore

__all__ = [
    "Checkpoint",
    "Run",
    "RunError",
    "RunInterrupted",
    "fork",
    "load",
    "resume",
    "run",
    "runs",
]

Config = Mapping[str, Any] | str | PathLike[str] | None
"""A run's settings: a mapping (dotted keys such as ``adapters.training`` allowed), or the
path of a YAML or TOML file as ``kitchen run --config FILE`` reads it."""


class RunError(KitchenError):
    """A run that started and did not complete: failed, cancelled, ended by a fault outside
    it (resumable) or interrupted. ``run`` is its handle; ``exit_code`` the code ``kitchen``
    would have exited with (1 failed, 75 a fault, 71 out of memory, 130 interrupted, …)."""

    def __init__(self, run: Run, code: int) -> None:
        self.run = run
        self.exit_code = code
        try:
            state = run.state()
        except KitchenError as exc:  # the log itself is out of reach (the fault that ended it)
            super().__init__(f"run {run.run_id} ended with exit {code}; its log: {exc}")
            return
        text = f"run {run.run_id} ended {state.status} (exit {code}) at step {state.step}"
        if state.error is not None:
            text += f": {state.error[0]}: {state.error[1]}"
        elif state.fault is not None:
            text += f": {state.fault[0]}: {state.fault[1]}"
        if state.status in ("interrupted", "running"):
            text += f"; continue with kitchen.api.resume({run.run_id!r})"
        super().__init__(text)


class RunInterrupted(RunError):
    """The run stopped on SIGINT (Ctrl-C, a notebook's interrupt) or was preempted: it is
    resumable where it stopped."""


@dataclass(frozen=True)
class Checkpoint:
    """A live checkpoint of a run: its name (``step-000020``), the optimizer steps it holds,
    the sha256 of its blob, and where the blob is (a folder, or a URL for a remote store)."""

    name: str
    step: int
    sha256: str
    location: str
    final: bool


@dataclass(frozen=True)
class Run:
    """A handle on a run in the log. It holds only the run's id: every property reads the log
    again, so a handle on a run in progress (in another process) shows it as it is now."""

    run_id: str

    def state(self) -> RunState:
        """The run folded from its events (``kitchen show --json``'s ``state``)."""
        with _store() as store:
            from kitchen.cli._common import fold_run

            return fold_run(store, self.run_id)

    @property
    def status(self) -> str:
        """``created``, ``running``, ``interrupted``, ``crashed`` (a running run whose worker is
        gone), ``completed``, ``failed`` or ``cancelled``: what ``kitchen runs`` shows."""
        from kitchen.cli._common import displayed_status, fold_run

        with _store() as store:
            return displayed_status(store, fold_run(store, self.run_id))

    @property
    def recipe(self) -> str | None:
        return self.state().recipe

    @property
    def config(self) -> dict[str, Any]:
        """The config as the run recorded it (secrets as ``**********``)."""
        return dict(self.state().config)

    @property
    def step(self) -> int:
        """Optimizer steps applied so far."""
        return self.state().step

    @property
    def metrics(self) -> list[dict[str, Any]]:
        """The training metrics, one row per optimizer step, ``{"step": N, name: value, …}``,
        in step order; a step re-executed after a resume has the value of its last execution
        (``kitchen show``'s). ``pandas.DataFrame(run.metrics)`` makes a table of them."""
        return _rows(self.state().step_metrics)

    @property
    def eval_metrics(self) -> list[dict[str, Any]]:
        """The held-out metrics, one row per evaluation, ``{"step": N, name: value, …}``."""
        return _rows(self.state().eval_metrics)

    @property
    def checkpoints(self) -> list[Checkpoint]:
        """The run's live checkpoints, oldest first."""
        from kitchen.cli.show import blob_place
        from kitchen.paths import kitchen_home

        state, home = self.state(), kitchen_home()
        return [
            Checkpoint(
                c.name,
                c.step,
                c.sha256,
                blob_place(state, home, c.uri) if c.location == "local" else c.uri,
                c.final,
            )
            for c in state.live_checkpoints()
        ]

    @property
    def lineage(self) -> list[dict[str, Any]]:
        """Where the run's weights came from: each ``LineageRef`` it recorded (``parent``,
        ``teacher``: source, kind, run id, sha256) and, for a fork, ``{"role": "fork", …}``
        with the parent run and step (``RunCreated.fork``), as plain dicts."""
        state = self.state()
        out = [ref.model_dump(mode="json") for ref in state.lineage]
        if state.fork is not None:
            out.insert(0, {"role": "fork", **state.fork.model_dump(mode="json")})
        return out

    @property
    def parent(self) -> Run | None:
        """The run this one was forked from, if it was."""
        fork_point = self.state().fork
        return None if fork_point is None else Run(fork_point.run_id)

    @property
    def adapter_path(self) -> Path | None:
        """The final PEFT adapter's folder, once the run completed (None before, and for a
        run whose blobs are on object storage: see ``kitchen show``)."""
        from kitchen.cli.show import paths
        from kitchen.paths import kitchen_home

        state = self.state()
        where = paths(state, kitchen_home())["final_adapter"]
        if where is None or state.blob_store.get("url"):
            return None
        return Path(where)

    @property
    def run_dir(self) -> Path:
        """The run's folder under ``KITCHEN_HOME`` (config.json, metrics.jsonl, …)."""
        from kitchen.cli.show import paths
        from kitchen.paths import kitchen_home

        return Path(str(paths(self.state(), kitchen_home())["run_dir"]))

    def sample(
        self,
        prompt: str,
        *,
        checkpoint: str | None = None,
        max_tokens: int = 32,
        temperature: float = 0.0,
        top_p: float = 1.0,
        top_k: int = -1,
        seed: int = 0,
    ) -> str:
        """The run's reply to ``prompt`` (a user message), from its newest live checkpoint or
        the one named (``step-000020``): ``kitchen sample``. Greedy unless ``temperature``."""
        from kitchen.cli.sample import generate

        text, _ = generate(
            self.state(),
            prompt,
            checkpoint=checkpoint,
            max_tokens=max_tokens,
            temperature=temperature,
            top_p=top_p,
            top_k=top_k,
            seed=seed,
        )
        return text

    def __repr__(self) -> str:
        return f"Run({self.run_id!r})"


def _rows(by_step: Mapping[int, Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [{"step": int(step), **by_step[step]} for step in sorted(by_step)]


# --------------------------------------------------------------------------- starting runs


def run(
    recipe: str,
    config: Config = None,
    *,
    run_id: str | None = None,
    progress: bool = True,
    **keys: Any,
) -> Run:
    """Start a new run of ``recipe`` and train it to the end: ``kitchen run``.

    ``keys`` beat ``config`` (a mapping, where dotted keys such as ``adapters.training`` go,
    or a YAML/TOML file). Every check that needs no training runs first: a bad key, value,
    file or run id raises ``ConfigError`` with nothing written. Returns the completed run's
    handle; a run that does not complete raises :class:`RunError` (or
    :class:`RunInterrupted`) carrying it.
    """
    from kitchen.engine import faults, launch
    from kitchen.store import check_db_url

    if run_id is not None:
        launch.check_run_id(run_id)
    check_db_url()
    file_data, config_file = _config_parts(config)
    prepared = launch.prepare(recipe, {**keys}, config_file, file_data)
    rid = run_id or launch.new_run_id(prepared.recipe.name)
    with _store(hook=faults.point) as store:
        code = launch.start(prepared, store, rid, _reporter(rid, progress))
    return _ended(Run(rid), code)


def resume(
    run_id: str | Run,
    config: Config = None,
    *,
    force: bool = False,
    progress: bool = True,
    **keys: Any,
) -> Run:
    """Continue an interrupted or crashed run from its newest valid checkpoint: ``kitchen
    resume``. ``keys`` (and ``config``) are this attempt's operating settings; a changed
    identity key, dataset or lineage is refused unless ``force``."""
    from kitchen.cli._common import fold_run
    from kitchen.cli.run import SERVED_HINT
    from kitchen.engine import faults, launch
    from kitchen.errors import NotFound

    rid = run_id.run_id if isinstance(run_id, Run) else run_id
    file_data, config_file = _config_parts(config)
    if config_file is not None:
        from kitchen import config as kconfig

        file_data = kconfig.read_file(config_file)
    with _store(hook=faults.point) as store:
        state = fold_run(store, rid)
        if state.recipe is None:
            raise NotFound(f"run {rid!r} has no RunCreated event")
        if state.workflow == "served":
            raise ConfigError(SERVED_HINT.format(run_id=rid))
        overrides = {**file_data, **keys}
        code = launch.resume(store, rid, state, overrides, _reporter(rid, progress), force=force)
    return _ended(Run(rid), code)


def fork(
    parent: str | Run,
    step: int | None = None,
    config: Config = None,
    *,
    run_id: str | None = None,
    force: bool = False,
    progress: bool = True,
    **keys: Any,
) -> Run:
    """A new run from ``parent``'s exact state at optimizer step ``step`` (None: its newest
    checkpoint), trained to the end: ``kitchen fork ID@STEP``. ``keys`` change what the
    workflow lets a fork change (learning rate, schedule, ``max_steps``, …) and operating
    settings; ``force`` takes a re-executed state whose steps differ from the parent's log."""
    import secrets

    from kitchen.engine import faults, launch
    from kitchen.engine import fork as kfork
    from kitchen.paths import kitchen_home
    from kitchen.store import check_db_url

    pid = parent.run_id if isinstance(parent, Run) else parent
    if run_id is not None:
        launch.check_run_id(run_id)
    target = pid if step is None else f"{pid}@{int(step)}"
    kfork.parse_target(target)
    check_db_url()
    file_data, config_file = _config_parts(config)
    if config_file is not None:
        from kitchen import config as kconfig

        file_data = kconfig.read_file(config_file)
    home = kitchen_home()
    fork_id = run_id or launch.check_run_id(
        f"{pid[:40]}-fork-{step if step is not None else 'last'}-{secrets.token_hex(2)}"
    )
    with _store(hook=faults.point) as store:
        plan = kfork.plan(store, target, {**file_data, **keys}, fork_id, home)
        code = kfork.start(store, plan, fork_id, _reporter(fork_id, progress), force=force)
    return _ended(Run(fork_id), code)


# --------------------------------------------------------------------------- reading runs


def runs(*, status: str | None = None, recipe: str | None = None) -> list[Run]:
    """The runs in the database, oldest first (``kitchen runs``), optionally only those with
    ``status`` (as :attr:`Run.status` says it) or of ``recipe``."""
    from kitchen.cli._common import displayed_status
    from kitchen.cli.runs import STATUSES

    if status is not None and status not in STATUSES:
        raise ConfigError(f"unknown status {status!r}; use one of {', '.join(STATUSES)}")
    query = "running" if status in ("crashed", "running") else status
    with _store() as store:
        return [
            Run(row.run_id)
            for row in store.list_runs(status=query, recipe=recipe)
            if status is None or displayed_status(store, row) == status
        ]


def load(run_id: str) -> Run:
    """The handle of run ``run_id``; ``NotFound`` if the log has no such run."""
    from kitchen.cli._common import not_found

    with _store() as store:
        if not store.run_exists(run_id):
            raise not_found(store, run_id)
    return Run(run_id)


# --------------------------------------------------------------------------- helpers


@contextlib.contextmanager
def _store(hook: Any = None) -> Iterator[EventStore]:
    from kitchen.store import open_store

    store = open_store(hook=hook) if hook is not None else open_store()
    try:
        yield store
    finally:
        store.close()


def _config_parts(config: Config) -> tuple[dict[str, Any], str | None]:
    """``config`` as (values, file): a mapping is values, anything else a file's path."""
    if config is None:
        return {}, None
    if isinstance(config, Mapping):
        return dict(config), None
    if isinstance(config, str | PathLike):
        return {}, str(config)
    raise ConfigError(
        f"config must be a mapping of keys or a YAML/TOML file's path, not {type(config).__name__}"
    )


def _ended(handle: Run, code: int) -> Run:
    from kitchen.engine.runner import EXIT_INTERRUPTED, EXIT_OK, EXIT_PREEMPTED

    if code == EXIT_OK:
        return handle
    if code in (EXIT_INTERRUPTED, EXIT_PREEMPTED):
        raise RunInterrupted(handle, code)
    raise RunError(handle, code)


def _reporter(run_id: str, progress: bool) -> Reporter:
    from kitchen.cli.track import install_report_writer
    from kitchen.engine.runner import Reporter

    install_report_writer()  # a run that ends hands its HTML report to its trackers

    class Progress(Reporter):
        """A ``tqdm.auto`` bar of optimizer steps (a widget in a notebook) with the workflow's
        progress metrics, and each evaluation as a line."""

        def __init__(self) -> None:
            self.bar: Any = None
            self.shown: tuple[str, ...] = ()
            self.t0 = time.monotonic()

        def started(self, state: Any, workflow: Any) -> None:
            self.shown = tuple(workflow.progress_metrics)

        def stage_done(self, stage: Any, result: Any, state: Any) -> None:
            if result.total_steps and self.bar is None:
                from tqdm.auto import tqdm

                self.bar = tqdm(
                    total=int(result.total_steps), initial=state.step, unit="step", desc=run_id
                )
            for key, m in result.metrics.items():
                if self.bar is not None:
                    self.bar.n = int(key) + 1
                    shown = {n: float(m[n]) for n in self.shown if n in m}
                    self.bar.set_postfix(shown, refresh=True)
            if result.eval_metrics:
                from kitchen.cli._common import fmt_value

                text = "  ".join(f"{k} {fmt_value(v)}" for k, v in result.eval_metrics.items())
                self._line(f"eval  {text}")

        def _line(self, text: str) -> None:
            if self.bar is not None:
                self.bar.write(text)
            else:
                print(text, file=sys.stderr, flush=True)

        def finished(self, state: Any, code: int) -> None:
            if self.bar is not None:
                self.bar.close()
                self.bar = None

    return Progress() if progress else Reporter()
