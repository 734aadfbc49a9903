"""Declarative workflows, compiled into one explicit transition table.

A workflow is a sequence of :class:`Stage` and :class:`Loop` nodes plus a teardown. Compiling
it yields a list of :class:`Transition` rows ``(trigger=stage, source, dest, conditions)``
that ``kitchen.engine.machine`` hands to a ``transitions`` Machine: the stages *are* the
transitions.

Machine states are the *slots* between stages: the state after a stage ran is named after that
stage (``get_batch``), or ``stage@qualifier`` when a workflow uses a stage more than once
(``evaluate@start``). ``start`` is initial; ``completed``, ``failed`` and ``cancelled`` are
terminal. Conditions are named predicates over the runner's view of the run (``save_due``), so
the table can be printed (``kitchen recipes --graph``) and checked without running anything. A
name prefixed with ``!`` is the negation.

Conditional stages (``when=``) that do not fire are skipped without writing anything. A loop's
body runs once on entry and again while its ``again`` condition holds; its first node must be an
unconditional stage so that "go round again" has exactly one target.

DPO, RL and distillation fit the same form: their sampling, reward and teacher stages are just
more stages and loops with their own conditions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, Union

if TYPE_CHECKING:
    from pydantic import BaseModel

INITIAL = "start"
COMPLETED = "completed"
FAILED = "failed"
CANCELLED = "cancelled"
TERMINAL_STATES = (COMPLETED, FAILED, CANCELLED)
FINISH_TRIGGER = "finish"
FAIL_TRIGGER = "fail"
CANCEL_TRIGGER = "cancel"
PREEMPTION_PENDING = "preemption_pending"
"""A condition a workflow may declare: true while a preempted attempt must run on to the next
checkpoint before it stops (steps still in flight). Without it, a preempted attempt stops
at the next step's start at the latest."""


@dataclass(frozen=True, slots=True)
class Stage:
    """One stage in the workflow. ``hot`` stages may share a group commit with the rest of
    their step; every other stage commits the events before it first. ``setup`` stages build
    what the attempt holds in memory (a dataset, a session, a tokenizer): a resume from a
    checkpoint runs them again before it continues.

    ``options`` is a free bag for a workflow's own use. Workflows written before ``setup`` was
    a field declared it there (``options=(("setup", True),)``); that still marks the stage as
    set-up.
    """

    name: str
    when: str | None = None
    qualifier: str | None = None
    hot: bool = False
    options: tuple[tuple[str, Any], ...] = ()
    setup: bool = False

    def __post_init__(self) -> None:
        if not self.setup and dict(self.options).get("setup"):
            object.__setattr__(self, "setup", True)

    @property
    def slot(self) -> str:
        return f"{self.name}@{self.qualifier}" if self.qualifier else self.name

    def option(self, key: str, default: Any = None) -> Any:
        if key == "setup" and self.setup:
            return True
        return dict(self.options).get(key, default)


@dataclass(frozen=True, slots=True)
class Loop:
    name: str
    body: tuple[Node, ...]
    again: str


Node = Union[Stage, Loop]  # noqa: UP007 - a runtime alias used before Loop is complete


@dataclass(frozen=True, slots=True)
class Transition:
    trigger: str
    source: str
    dest: str
    conditions: tuple[str, ...] = ()

    def describe(self) -> str:
        cond = f"  [{' and '.join(self.conditions)}]" if self.conditions else ""
        return f"{self.source} --{self.trigger}--> {self.dest}{cond}"


Condition = Callable[[Any], bool]
RowCheck = Callable[[str, int, Mapping[str, Any]], None]


@dataclass(frozen=True)
class Rows:
    """The dataset rows a workflow trains on: the config key naming the source, the columns
    every row must hold, and a check that raises ConfigError naming the source and row."""

    columns: tuple[str, ...]
    check: RowCheck | None = None
    source_key: str = "dataset"


@dataclass(frozen=True)
class Workflow:
    """A workflow: its stages and transitions, and what is its own rather than the engine's.

    - ``step_metric``: the per-step metric a re-executed step is compared on (determinism);
    - ``progress_metrics``: what the progress line shows, the first being the loss;
    - ``summary_metrics``: held-out metrics the end-of-run summary compares first vs last;
    - ``rows``: the dataset row shape launch checks before a run exists;
    - ``lineage``: role → the config keys that name its weights (the first one set counts),
      e.g. ``{"parent": ("load_checkpoint_path",)}``: launch resolves and hashes them;
    - ``preflight``: checks of the settings that need no heavy work (renderer, teacher …),
      called with a ``kitchen.stage_api.Preflight`` before the run exists; raises ConfigError;
    - ``resources``: makes the typed resources object the stages share in one attempt;
    - ``code``: stage name → function, imported only when a run starts;
    - ``fork_keys``: the identity keys a fork (``kitchen fork``) may change: they act on the
      steps after the fork point only (learning rate, schedule, ``max_steps``, cadences …);
    - ``fork_artifacts``: the kinds of run-wide artifacts a fork carries over from its
      parent (computed once from the parent's *starting* weights, so never recomputed).
    """

    name: str
    body: tuple[Node, ...]
    teardown: tuple[Stage, ...] = ()
    conditions: Mapping[str, Condition] = field(default_factory=dict)
    description: str = ""
    step_metric: str | None = None
    progress_metrics: tuple[str, ...] = ()
    summary_metrics: tuple[str, ...] = ()
    rows: Rows | None = None
    lineage: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    preflight: Callable[[Any], None] | None = None
    resources: Callable[[], Any] = dict
    code: Callable[[], Mapping[str, Any]] | None = None
    fork_keys: tuple[str, ...] = ()
    fork_artifacts: tuple[str, ...] = ()

    def stages(self) -> Iterator[Stage]:
        def walk(nodes: Sequence[Node]) -> Iterator[Stage]:
            for n in nodes:
                if isinstance(n, Loop):
                    yield from walk(n.body)
                else:
                    yield n

        yield from walk(self.body)
        yield from self.teardown

    def stage_at(self, slot: str) -> Stage:
        return self._by_slot[slot]

    @cached_property
    def _by_slot(self) -> dict[str, Stage]:
        """slot -> stage, built once: the runner looks a stage up on every transition."""
        found: dict[str, Stage] = {}
        for s in self.stages():
            found.setdefault(s.slot, s)
        return found

    def compile(self) -> TransitionTable:
        return compile_workflow(self)


# A pending edge: a state waiting for its next stage, and the conditions on the way there.
_Pending = tuple[str, tuple[str, ...]]


def _negate(cond: str) -> str:
    return cond[1:] if cond.startswith("!") else f"!{cond}"


class _Compiler:
    def __init__(self) -> None:
        self.rows: list[Transition] = []

    def enter_stage(self, stage: Stage, pending: list[_Pending]) -> list[_Pending]:
        conds = (stage.when,) if stage.when else ()
        for src, pre in pending:
            self.rows.append(Transition(stage.name, src, stage.slot, pre + conds))
        out: list[_Pending] = [(stage.slot, ())]
        if stage.when:
            out += [(src, (*pre, _negate(stage.when))) for src, pre in pending]
        return out

    def nodes(self, nodes: Sequence[Node], pending: list[_Pending]) -> list[_Pending]:
        for node in nodes:
            pending = (
                self.loop(node, pending)
                if isinstance(node, Loop)
                else self.enter_stage(node, pending)
            )
        return pending

    def loop(self, loop: Loop, pending: list[_Pending]) -> list[_Pending]:
        first = loop.body[0] if loop.body else None
        if not isinstance(first, Stage) or first.when is not None:
            raise ValueError(f"loop {loop.name!r} must start with an unconditional stage")
        exits = self.nodes(loop.body, pending)
        for src, pre in exits:
            self.rows.append(Transition(first.name, src, first.slot, (*pre, loop.again)))
        return [(src, (*pre, _negate(loop.again))) for src, pre in exits]


@dataclass(frozen=True)
class TransitionTable:
    workflow: str
    states: tuple[str, ...]
    rows: tuple[Transition, ...]

    def from_state(self, state: str) -> list[Transition]:
        return [
            t
            for t in self.rows
            if t.source == state and t.trigger not in (FAIL_TRIGGER, CANCEL_TRIGGER)
        ]

    def conditions(self) -> set[str]:
        return {c.lstrip("!") for t in self.rows for c in t.conditions}

    def text(self) -> str:
        lines = [f"workflow {self.workflow}", "states: " + ", ".join(self.states), "transitions:"]
        lines += [
            f"  {t.describe()}"
            for t in self.rows
            if t.trigger not in (FAIL_TRIGGER, CANCEL_TRIGGER)
        ]
        lines.append(f"  * --{FAIL_TRIGGER}--> {FAILED}   * --{CANCEL_TRIGGER}--> {CANCELLED}")
        return "\n".join(lines)

    def mermaid(self) -> str:
        def node(s: str) -> str:
            return {"start": "[*]"}.get(s, s.replace("@", "_at_"))

        lines = ["stateDiagram-v2"]
        for t in self.rows:
            if t.trigger in (FAIL_TRIGGER, CANCEL_TRIGGER):
                continue
            label = t.trigger + (f" [{' and '.join(t.conditions)}]" if t.conditions else "")
            lines.append(f"    {node(t.source)} --> {node(t.dest)}: {label}")
        lines.append(f"    {COMPLETED} --> [*]")
        return "\n".join(lines)


@dataclass(frozen=True)
class Recipe:
    """A recipe: a workflow run with its settings and its adapters, found by ``name``.

    - ``workflow``: the name of the workflow it runs (``kitchen.engine.registry``'s ``workflows``);
    - ``config``: the pydantic model of its settings; its defaults are the recipe's;
    - ``adapters``: the manifest, port → adapter name (``adapters.<port>=NAME`` overrides it);
    - ``renamed``: keys that older versions recorded under another name → today's key, so that
      runs they recorded still resume.

    ``kitchen.recipes.load_recipe`` returns one; a module written before recipes were typed
    (``NAME``, ``DESCRIPTION``, ``WORKFLOW``, ``ADAPTERS``, ``Config``, ``RENAMED``) is read into
    one there.
    """

    name: str
    workflow: str
    config: type[BaseModel]
    description: str = ""
    adapters: Mapping[str, str] = field(default_factory=dict)
    renamed: Mapping[str, str] = field(default_factory=dict)


def compile_workflow(wf: Workflow) -> TransitionTable:
    slots = [s.slot for s in wf.stages()]
    dup = {s for s in slots if slots.count(s) > 1}
    if dup:
        raise ValueError(
            f"workflow {wf.name!r}: stage slots used twice: {sorted(dup)} (add qualifiers)"
        )
    comp = _Compiler()
    pending = comp.nodes(wf.body, [(INITIAL, ())])
    pending = comp.nodes(wf.teardown, pending)
    for src, pre in pending:
        comp.rows.append(Transition(FINISH_TRIGGER, src, COMPLETED, pre))
    states = (INITIAL, *slots, *TERMINAL_STATES)
    live = [s for s in states if s not in TERMINAL_STATES]
    comp.rows += [Transition(FAIL_TRIGGER, s, FAILED) for s in live]
    comp.rows += [Transition(CANCEL_TRIGGER, s, CANCELLED) for s in live]
    used = {c.lstrip("!") for t in comp.rows for c in t.conditions}
    unknown = used - set(wf.conditions)
    if unknown:
        raise ValueError(f"workflow {wf.name!r}: conditions without a predicate: {sorted(unknown)}")
    return TransitionTable(wf.name, states, tuple(comp.rows))
