"""Metric series of folded runs, for ``plot`` and ``report``: workflow-neutral by design.

Everything here comes from the fold's neutral facts (``step_metrics``, ``eval_metrics``,
``superseded_metrics``), never from a stage or a metric name, so a workflow that lands
tomorrow (DPO, RL, a served model) is plotted the day it lands. A series is one metric of one
run: its effective points, the points a resume superseded (drawn dimmed) and whether it is a
training or a held-out (evaluation) metric. The order puts first the metrics the run's
workflow declares as its headline ones (its loss, then its held-out scores), not a name
written here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kitchen.errors import ConfigError

if TYPE_CHECKING:
    from kitchen.engine.state import RunState

Point = tuple[int, float]


@dataclass(frozen=True)
class Series:
    """One metric of one run against step; ``kind`` is ``train`` or ``eval`` (held-out)."""

    run_id: str
    name: str
    kind: str
    points: tuple[Point, ...]
    superseded: tuple[Point, ...] = field(default=())

    @property
    def label(self) -> str:
        return self.name if self.kind == "train" else f"{self.name} (held-out)"


def _number(value: Any) -> float | None:
    """A plottable value: int or float, never a bool (a flag is not a curve)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _collect(by_step: Iterable[tuple[int, dict[str, Any]]]) -> dict[str, list[Point]]:
    out: dict[str, list[Point]] = {}
    for step, metrics in sorted(by_step, key=lambda item: int(item[0])):
        for name, value in metrics.items():
            number = _number(value)
            if number is not None:
                out.setdefault(name, []).append((int(step), number))
    return out


def run_series(state: RunState) -> list[Series]:
    """Every numeric metric of a run: the workflow's headline metrics first (``headline``),
    then the other training metrics and the other held-out ones, each by name."""
    train = _collect(state.step_metrics.items())
    dropped = _collect(
        (step, metrics) for step, (_seq, metrics) in state.superseded_metrics.items()
    )
    evals = _collect(state.eval_metrics.items())
    series = [
        Series(
            state.run_id, name, "train", tuple(train.get(name, ())), tuple(dropped.get(name, ()))
        )
        for name in sorted(set(train) | set(dropped))
    ]
    series += [
        Series(state.run_id, name, "eval", tuple(pts)) for name, pts in sorted(evals.items())
    ]
    first = headline(state.workflow)
    return sorted(series, key=lambda s: first.get((s.kind, s.name), len(first)))


def headline(workflow: str | None) -> dict[tuple[str, str], int]:
    """The rank of each of the workflow's headline metrics, ``(kind, name)``: its loss (the
    first of its progress metrics), its held-out scores (summary metrics), then its other
    progress metrics; every other metric (bookkeeping such as ``num_tokens``, ``progress``)
    follows them. The workflow declares these (``Workflow.progress_metrics`` and
    ``summary_metrics``): no metric name is known here. An unknown workflow: none."""
    from kitchen.errors import KitchenError

    if workflow is None:
        return {}
    try:
        from kitchen.workflows import get_workflow

        found = get_workflow(workflow)
    except (KitchenError, TypeError):
        return {}
    progress = tuple(found.progress_metrics)
    order = [
        *(("train", name) for name in progress[:1]),
        *(("eval", name) for name in found.summary_metrics),
        *(("train", name) for name in progress[1:]),
    ]
    return {key: rank for rank, key in enumerate(dict.fromkeys(order))}


def _values(series: Sequence[Series], name: str) -> set[float]:
    return {v for s in series if s.name == name for _, v in (*s.points, *s.superseded)}


def select(series: Sequence[Series], metrics: Sequence[str] | None) -> list[str]:
    """The metric names to draw, in order: those asked for, or every one that varies.

    A constant (an epoch counter in a one-epoch run, an example count) says nothing as a curve,
    so the default leaves it out; asking for it by name still draws it. An unknown name is an
    error that lists the known ones.
    """
    known = list(dict.fromkeys(s.name for s in series))
    if metrics:
        missing = [m for m in metrics if m not in known]
        if missing:
            raise ConfigError(
                f"no metric {missing[0]!r} in these runs; known: {', '.join(known) or 'none'}"
            )
        return list(dict.fromkeys(metrics))
    chosen = [n for n in known if len(_values(series, n)) > 1]  # over time, or between runs
    return chosen or known


def extremes(s: Series) -> tuple[Point, Point] | None:
    """The lowest and the highest effective point.

    Names are never read, so "lower is better" cannot be told from "higher is better": the
    views show both and let the reader, who knows the metric, pick.
    """
    if not s.points:
        return None
    return min(s.points, key=lambda p: p[1]), max(s.points, key=lambda p: p[1])
