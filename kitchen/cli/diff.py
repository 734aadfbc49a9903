"""``kitchen diff RUN_A RUN_B``: what differs between two runs, side by side.

Read from the two folds' neutral facts only (config, versions, data fingerprint, lineage,
metrics, checkpoints), so runs of any two workflows can be compared — a DPO run against the
supervised run it started from, say. Metric names are never interpreted: "best" is shown as
both the lowest and the highest effective value, since only the reader knows which is better.
"""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kitchen.engine.state import RunState


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "diff",
        help="compare two runs: config, versions, data, lineage, metrics, checkpoints",
        description="Show the config keys that differ, library versions, data fingerprints, "
        "lineage (parent, teacher), final and best metrics side by side, and checkpoints.",
    )
    p.add_argument("run_a", metavar="RUN_A")
    p.add_argument("run_b", metavar="RUN_B")
    p.add_argument("--all", action="store_true", help="list equal config keys and versions too")
    p.set_defaults(func=_diff)


def _flat(obj: Any, prefix: str = "") -> dict[str, Any]:
    """Nested config as dotted keys, so a changed leaf is named exactly."""
    if isinstance(obj, dict) and obj:
        out: dict[str, Any] = {}
        for k, v in obj.items():
            out |= _flat(v, f"{prefix}{k}.")
        return out
    return {prefix[:-1]: obj}


def _show(value: Any) -> str:
    from kitchen.cli._common import fmt_value

    if value is _MISSING:
        return "(absent)"
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True)
    return fmt_value(value)


_MISSING = object()


def compare(a: dict[str, Any], b: dict[str, Any], everything: bool) -> list[list[str]]:
    rows = []
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key, _MISSING), b.get(key, _MISSING)
        if everything or va != vb:
            rows.append([key, _show(va), _show(vb), "" if va == vb else "*"])
    return rows


def _lineage(state: RunState) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for ref in state.lineage:
        what = ref.run_id or ref.source
        if ref.what:
            what = f"{what} {ref.what}"
        out[ref.role] = f"{what} sha256 {ref.sha256[:12]}" if ref.sha256 else what
    if state.fork is not None:
        f = state.fork
        out["fork"] = f"{f.run_id}@{f.step} sha256 {f.sha256[:12]}"
    return out


def branch_point(a: RunState, b: RunState) -> tuple[str, str, int] | None:
    """(fork, parent, step) when one of the two runs is a fork of the other."""
    for fork, parent in ((b, a), (a, b)):
        if fork.fork is not None and fork.fork.run_id == parent.run_id:
            return fork.run_id, parent.run_id, fork.fork.step
    return None


def _metrics(state: RunState, since: int = 0) -> list[list[str]]:
    """Per metric: the final value (run end, else last logged), then min and max with steps
    (from step ``since`` on: a parent compared with its fork from the branch point)."""
    from dataclasses import replace

    from kitchen.cli._series import extremes, run_series

    final = dict(state.final_metrics) or {
        **state.last_metrics(),
        **(state.eval_metrics[max(state.eval_metrics)] if state.eval_metrics else {}),
    }
    out = []
    for s in run_series(state):
        s = replace(s, points=tuple(p for p in s.points if p[0] >= since))
        ends = extremes(s)
        lo = f"{ends[0][1]:.4g}@{ends[0][0]}" if ends else "-"
        hi = f"{ends[1][1]:.4g}@{ends[1][0]}" if ends else "-"
        last = s.points[-1][1] if s.points else None
        value = final.get(s.name, last)
        out.append([s.label, _show(value), lo, hi])
    return out


def _checkpoints(state: RunState) -> list[str]:
    return [f"{c.name} ({c.status}, sha256 {c.sha256[:12]})" for c in state.checkpoints]


def render(a: RunState, b: RunState, status_a: str, status_b: str, everything: bool) -> list[str]:
    from kitchen.cli._common import table

    head = ["", a.run_id, b.run_id]
    lines = [
        table(
            head,
            [
                ["recipe", a.recipe or "-", b.recipe or "-"],
                ["workflow", a.workflow or "-", b.workflow or "-"],
                ["status", status_a, status_b],
                ["step", str(a.step), str(b.step)],
                ["attempts", str(len(a.attempts)), str(len(b.attempts))],
                ["seed", _show(a.seed), _show(b.seed)],
                ["config hash", (a.config_hash or "-")[:12], (b.config_hash or "-")[:12]],
                [
                    "data fingerprint",
                    (a.data_fingerprint or "-")[:12],
                    (b.data_fingerprint or "-")[:12],
                ],
            ],
        )
    ]
    sections = [
        ("config", compare(_flat(a.config), _flat(b.config), everything), "same config"),
        ("versions", compare(a.versions, b.versions, everything), "same versions"),
        ("lineage", compare(_lineage(a), _lineage(b), True), "neither has lineage"),
    ]
    for title, rows, empty in sections:
        lines += ["", f"{title}:" if rows else f"{title}: {empty}"]
        if rows:
            lines.append(_indent(table(["key", a.run_id, b.run_id, ""], rows)))
    branch = branch_point(a, b)
    since = 0
    if branch is not None:
        fork, parent, since = branch
        kept = a if a.run_id == fork else b
        assert kept.fork is not None
        changed = ", ".join(f"{k}={_show(v)}" for k, v in kept.fork.overrides.items())
        lines[:0] = [
            f"{fork} forks from {parent} at step {since}: the two are one run up to it"
            + (f"; changed from there: {changed}" if changed else "; nothing changed"),
            "",
        ]
        lines += ["", f"metrics (final; min and max from the branch point, step {since}, on):"]
    else:
        lines += ["", "metrics (final; min and max over the effective history, value@step):"]
    ma = {r[0]: r[1:] for r in _metrics(a, since)}
    mb = {r[0]: r[1:] for r in _metrics(b, since)}
    rows = []
    for name in list(dict.fromkeys([*ma, *mb])):
        ra, rb = ma.get(name, ["-"] * 3), mb.get(name, ["-"] * 3)
        rows.append([name, ra[0], rb[0], f"{ra[1]} {ra[2]}", f"{rb[1]} {rb[2]}"])
    if rows:
        lines.append(
            _indent(
                table(
                    [
                        "metric",
                        f"final {a.run_id}",
                        f"final {b.run_id}",
                        f"min max {a.run_id}",
                        f"min max {b.run_id}",
                    ],
                    rows,
                )
            )
        )
    else:
        lines.append("  no metrics logged")
    ca, cb = _checkpoints(a), _checkpoints(b)
    pairs = [
        [ca[i] if i < len(ca) else "-", cb[i] if i < len(cb) else "-"]
        for i in range(max(len(ca), len(cb)))
    ]
    lines += ["", "checkpoints:" if pairs else "checkpoints: none"]
    if pairs:
        lines.append(_indent(table([a.run_id, b.run_id], pairs)))
    return lines


def _indent(text: str) -> str:
    return "\n".join(f"  {line}".rstrip() for line in text.splitlines())


def _diff(args: argparse.Namespace) -> int:
    from kitchen.cli._common import displayed_status, fold_run, open_store

    store = open_store()
    a = fold_run(store, args.run_a)
    b = fold_run(store, args.run_b)
    print("\n".join(render(a, b, displayed_status(store, a), displayed_status(store, b), args.all)))
    return 0
