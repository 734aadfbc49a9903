"""The run's state machine: a ``transitions`` Machine built from a workflow's transition table.

The runner asks :meth:`RunMachine.choose` which transition to take next (the first row leaving
the current state whose conditions hold on the runner's view), appends that stage's events, runs
the stage, and then :meth:`take` s the transition. Conditions are evaluated once, before the
stage runs, and the Machine re-checks the same decision when it takes the transition, so a stage
that moves the data cursor cannot change which edge it was started on.

Guards, Prefect-style: terminal states have no outgoing transitions, so a trigger from them (or
any trigger the table does not allow from the current state) raises ``IllegalTransition`` before
the runner writes anything.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from transitions import Machine, MachineError

from kitchen.errors import IllegalTransition
from kitchen.workflow import (
    CANCEL_TRIGGER,
    FAIL_TRIGGER,
    TERMINAL_STATES,
    Transition,
    TransitionTable,
)


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
        self._decision: dict[str, bool] = {}
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
        for row in table.rows:
            self._machine.add_transition(
                row.trigger,
                row.source,
                row.dest,
                conditions=[self._holds(c) for c in row.conditions],
            )

    def _holds(self, cond: str) -> Callable[[], bool]:
        name, want = (cond[1:], False) if cond.startswith("!") else (cond, True)
        return lambda: self._decision[name] is want

    @property
    def state(self) -> str:
        return self.model.state

    @property
    def terminal(self) -> bool:
        return self.model.state in TERMINAL_STATES

    def choose(self, view: Any) -> Transition | None:
        """The transition to take next from the current state, or None if none applies."""
        self._decision = {}
        for row in self._from[self.model.state]:
            ok = True
            for cond in row.conditions:
                name = cond.lstrip("!")
                if name not in self._decision:
                    self._decision[name] = bool(self._predicates[name](view))
                if self._decision[name] is cond.startswith("!"):
                    ok = False
                    break
            if ok:
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
        """Take the transition chosen by :meth:`choose` (conditions as decided then)."""
        self.check(row.trigger)
        try:
            ok = self.model.trigger(row.trigger)
        except MachineError as exc:  # pragma: no cover - check() guards this
            raise IllegalTransition(str(exc)) from None
        if not ok or self.model.state != row.dest:
            raise IllegalTransition(
                f"{row.trigger!r} from {row.source!r} did not reach {row.dest!r} "
                f"(now {self.model.state!r})"
            )

    def fail(self) -> None:
        self.check(FAIL_TRIGGER)
        self.model.trigger(FAIL_TRIGGER)

    def cancel(self) -> None:
        self.check(CANCEL_TRIGGER)
        self.model.trigger(CANCEL_TRIGGER)
