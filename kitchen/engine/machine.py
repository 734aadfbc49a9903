"""The run's state machine: the workflow's compiled transition table decides, a ``transitions``
Machine holds the state.

The runner asks :meth:`RunMachine.choose` which transition to take next: the first row leaving
the current state whose conditions hold on the runner's view. That is the one decision; it is
made once, before the stage runs, so a stage that moves the data cursor cannot change which
edge it was started on. The runner appends that stage's events, runs the stage, and then
:meth:`take` s the row. The Machine knows each row as an edge of its own (no conditions of its
own to evaluate again): it only refuses an edge the table does not have from the current state
and records where the run is.

Guards, Prefect-style: terminal states have no outgoing transitions, so a trigger from them (or
any trigger the table does not allow from the current state) raises ``IllegalTransition`` before
the runner writes anything.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from transitions import Machine, MachineError

from kitchen.errors import IllegalTransition
from kitchen.spec import (
    CANCEL_TRIGGER,
    CANCELLED,
    FAIL_TRIGGER,
    FAILED,
    TERMINAL_STATES,
    Transition,
    TransitionTable,
)


def _edge(row: Transition) -> str:
    """The Machine's name for a row: a stage can lead to several slots (``evaluate@start``,
    ``evaluate@end``), so the edge names its destination too."""
    return f"{row.trigger}->{row.dest}"


class _Model:
    """The object ``transitions`` drives; kept separate so generated trigger methods cannot
    shadow the runner's own attributes."""

    state: str
    trigger: Callable[[str], bool]  # added by transitions


class RunMachine:
    def __init__(
        self,
        table: TransitionTable,
        predicates: Mapping[str, Callable[[Any], bool]],
        initial: str,
    ) -> None:
        if initial not in table.states:
            raise IllegalTransition(
                f"state {initial!r} is not a state of workflow {table.workflow!r}"
            )
        self.table = table
        self._predicates = predicates
        self._rows = frozenset(table.rows)
        self._from: dict[str, list[Transition]] = {s: table.from_state(s) for s in table.states}
        self._triggers: dict[str, set[str]] = {s: set() for s in table.states}
        for row in table.rows:
            self._triggers[row.source].add(row.trigger)
        self.model = _Model()
        self._machine = Machine(
            model=self.model,
            states=list(table.states),
            initial=initial,
            auto_transitions=False,
            send_event=False,
        )
        edges = dict.fromkeys((row.source, row.dest, _edge(row)) for row in table.rows)
        for source, dest, edge in edges:
            self._machine.add_transition(edge, source, dest)

    @property
    def state(self) -> str:
        return self.model.state

    @property
    def terminal(self) -> bool:
        return self.model.state in TERMINAL_STATES

    def choose(self, view: Any) -> Transition | None:
        """The transition to take next from the current state, or None if none applies."""
        decided: dict[str, bool] = {}  # each predicate evaluated at most once per choice
        for row in self._from[self.model.state]:
            for cond in row.conditions:
                name = cond.lstrip("!")
                if name not in decided:
                    decided[name] = bool(self._predicates[name](view))
                if decided[name] is cond.startswith("!"):
                    break
            else:
                return row
        return None

    def check(self, trigger: str) -> None:
        """Raise IllegalTransition unless ``trigger`` may fire from the current state."""
        if trigger not in self._triggers.get(self.model.state, ()):
            raise IllegalTransition(
                f"{trigger!r} is not allowed from state {self.model.state!r} "
                f"of workflow {self.table.workflow!r}"
            )

    def take(self, row: Transition) -> None:
        """Take the transition chosen by :meth:`choose` (its conditions as decided then)."""
        self.check(row.trigger)
        if row.source != self.model.state or row not in self._rows:
            raise IllegalTransition(
                f"{row.describe()} is not a transition of workflow {self.table.workflow!r} "
                f"from state {self.model.state!r}"
            )
        try:
            ok = self.model.trigger(_edge(row))
        except MachineError as exc:  # pragma: no cover - check() guards this
            raise IllegalTransition(str(exc)) from None
        if not ok or self.model.state != row.dest:
            raise IllegalTransition(
                f"{row.trigger!r} from {row.source!r} did not reach {row.dest!r} "
                f"(now {self.model.state!r})"
            )

    def fail(self) -> None:
        self.check(FAIL_TRIGGER)
        self.model.trigger(f"{FAIL_TRIGGER}->{FAILED}")

    def cancel(self) -> None:
        self.check(CANCEL_TRIGGER)
        self.model.trigger(f"{CANCEL_TRIGGER}->{CANCELLED}")
