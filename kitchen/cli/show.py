"""``kitchen show RUN_ID``: one run, folded from its events, as a person wants to read it.

``describe`` is also what ``kitchen replay`` prints after its timeline, so the two commands
always agree on what a state looks like.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kitchen.engine.state import Attempt, RunState


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "show",
        help="show one run: config, status, attempts, checkpoints, metrics, paths",
        description="Fold a run's events and show its recorded config, status, attempts, "
        "checkpoints, metrics, errors, determinism mismatches and paths.",
    )
    p.add_argument("run_id", metavar="RUN_ID")
    p.add_argument("--json", action="store_true", help="print the folded state as JSON")
    p.set_defaults(func=_show)


def _show(args: argparse.Namespace) -> int:
    from kitchen.cli._common import displayed_status, fold_run, kitchen_home, open_store

    store = open_store()
    state = fold_run(store, args.run_id)
    status = displayed_status(store, state)
    home = kitchen_home()
    if args.json:
        print(json.dumps(as_json(state, status, home), indent=2))
    else:
        print("\n".join(describe(state, status, home)))
    return 0


def paths(state: RunState, home: Path) -> dict[str, str | None]:
    adapter = blob_place(state, home, state.adapter_uri) if state.adapter_uri else None
    return {"run_dir": str(home / (state.run_dir or state.run_id)), "final_adapter": adapter}


def blob_place(state: RunState, home: Path, uri: str) -> str:
    """Where a run's blob is: under KITCHEN_HOME, in the folder or at the URL it recorded."""
    url = state.blob_store.get("url")
    if url:
        return f"{str(url).rstrip('/')}/{uri}"
    return str(Path(state.blob_store.get("root") or home) / uri)


def as_json(state: RunState, status: str, home: Path) -> dict[str, Any]:
    from kitchen.cli._common import state_json

    return {
        "state": state_json(state, status),
        "paths": paths(state, home),
        "replay": f"kitchen replay {state.run_id}",
    }


def describe(state: RunState, status: str, home: Path) -> list[str]:
    """The readable view of a state; ``status`` is the one to show (``crashed`` is derived)."""
    lines = _header(state, status)
    lines += _config(state)
    lines += _lineage(state)
    lines += _attempts(state, status)
    lines += _checkpoints(state)
    lines += _artifacts(state)
    lines += _metrics(state)
    lines += _problems(state, status)
    where = paths(state, home)
    lines += ["", "paths:", f"  run folder     {where['run_dir']}"]
    if where["final_adapter"]:
        lines.append(f"  final adapter  {where['final_adapter']}")
    lines += ["", f"replay: kitchen replay {state.run_id}"]
    if state.workflow == "served":
        lines.append("resume: `kitchen serve` owns this run; starting it rebuilds the model")
    elif status in ("crashed", "interrupted"):
        lines.append(f"resume: kitchen resume {state.run_id}")
    return lines


def _header(state: RunState, status: str) -> list[str]:
    from kitchen.cli._common import fmt_time

    shown = status if status == state.status else f"{status} (the log says {state.status})"
    if state.stage:
        shown += f", in stage {state.stage}"
    return [
        f"run        {state.run_id}",
        f"recipe     {state.recipe or '-'} (workflow {state.workflow or '-'})",
        f"status     {shown}",
        f"step       {state.step} (epoch {state.epoch}, machine state {state.machine_state})",
        f"created    {fmt_time(state.created_at)} UTC",
        f"updated    {fmt_time(state.updated_at)} UTC (seq {state.last_seq})",
        f"seed       {state.seed}",
        f"config     sha256 {state.config_hash or '-'}",
        f"data       sha256 {state.data_fingerprint or '-'}",
    ]


def _config(state: RunState) -> list[str]:
    config = state.config
    if not config:
        return ["", "config (as recorded): empty"]
    operating = {k for a in state.attempts if a.operating for k in a.operating}
    width = max(len(k) for k in config)
    title = "config (as recorded)"
    if operating:
        title += ": * marks an operating setting, which an attempt may change"
    return [
        "",
        title + ":",
        *(
            f"  {k.ljust(width)}{'*' if k in operating else ' '} {json.dumps(v, sort_keys=True)}"
            for k, v in sorted(config.items())
        ),
    ]


def _ending(attempt: Attempt, last: bool, status: str) -> str:
    """How an attempt ended; the open last attempt is running or (its worker gone) crashed."""
    if attempt.ended is not None:
        return attempt.ended
    return status if last and status in ("running", "crashed") else "open"


def _attempts(state: RunState, status: str) -> list[str]:
    from kitchen.cli._common import fmt_time, table
    from kitchen.engine.resume_policy import attempt_changes

    if not state.attempts:
        return ["", "attempts: none yet"]
    names = {c.seq: c.name for c in state.checkpoints}
    rows = []
    for i, a in enumerate(state.attempts):
        resumed = "-"
        if a.resumed_from is not None:
            resumed = f"{names.get(a.resumed_from, 'checkpoint')} (seq {a.resumed_from})"
        last = i == len(state.attempts) - 1
        rows.append(
            [
                str(a.number),
                a.worker,
                a.host,
                str(a.pid),
                a.backend.get("world_size", "1"),
                fmt_time(a.started_at),
                _ending(a, last, status),
                resumed,
            ]
        )
    headers = ["#", "WORKER", "HOST", "PID", "PROCS", "STARTED (UTC)", "ENDED", "RESUMED FROM"]
    lines = ["", "attempts:", *_indent(table(headers, rows))]
    for number, changes in attempt_changes(state):
        lines.append(f"  attempt {number} changed: {'; '.join(changes)}")
    return lines


def _checkpoints(state: RunState) -> list[str]:
    from kitchen.cli._common import table

    if not state.checkpoints:
        return ["", "checkpoints: none"]
    rows = [
        [c.name + (" (final)" if c.final else ""), str(c.step), c.status, str(c.seq), c.uri]
        for c in state.checkpoints
    ]
    return [
        "",
        "checkpoints:",
        *_indent(table(["NAME", "STEP", "STATUS", "SEQ", "URI"], rows)),
    ]


def _lineage(state: RunState) -> list[str]:
    """Where the run's starting (parent) or teaching weights came from, with their sha256."""
    lines: list[str] = []
    for ref in state.lineage:
        what = f"run {ref.run_id} ({ref.what})" if ref.kind == "run" else f"{ref.kind} {ref.source}"
        sha = f"  sha256 {ref.sha256[:16]}" if ref.sha256 else ""
        lines.append(f"  {ref.role:<8} {what}{sha}")
    from kitchen.engine.lineage import fork_lines

    lines += [f"  {line}" for line in fork_lines(state)]
    return ["", "lineage:", *lines] if lines else []


def _artifacts(state: RunState) -> list[str]:
    from kitchen.cli._common import table

    found = [a for a in state.artifacts if a.kind != "final_weights"]
    if not found:
        return []
    rows = [
        [
            a.kind,
            "" if a.step is None else str(a.step),
            "deleted" if a.deleted else "superseded" if state.is_superseded(a.seq) else "live",
            str(a.seq),
            a.sha256[:12],
            a.uri,
        ]
        for a in found
    ]
    headers = ["KIND", "STEP", "STATUS", "SEQ", "SHA256", "URI"]
    return ["", "artifacts:", *_indent(table(headers, rows))]


def _metrics(state: RunState) -> list[str]:
    from kitchen.cli._common import fmt_metrics

    rows: list[tuple[str, dict[str, Any]]] = []
    if state.final_metrics:
        rows.append(("final", state.final_metrics))
    if state.step_metrics:
        last = max(state.step_metrics)
        rows.append((f"last step ({last})", state.step_metrics[last]))
    rows += [(f"eval at step {step}", m) for step, m in sorted(state.eval_metrics.items())]
    if not rows:
        return ["", "metrics: none yet"]
    width = max(len(label) for label, _ in rows)
    return ["", "metrics:", *(f"  {label.ljust(width)}  {fmt_metrics(m)}" for label, m in rows)]


KILLED_HINT = (
    "the last attempt ended without a word (no event, its worker gone): it was killed — "
    "SIGKILL, which is how the kernel's OOM killer and a cgroup memory limit stop a process — "
    "or its machine went down. If memory is the likely cause, resume with less per micro-batch "
    "(max_tokens_per_microbatch=…) or gradient_checkpointing=true"
)


def _problems(state: RunState, status: str = "") -> list[str]:
    from kitchen.cli._common import fmt_value

    lines: list[str] = []
    if state.error:
        lines += ["", f"error: {state.error[0]}: {state.error[1]}"]
    if state.cancel_reason:
        lines += ["", f"cancelled: {state.cancel_reason}"]
    if state.fault:
        lines += ["", f"stopped by a fault ({state.fault[0]}), resumable: {state.fault[1]}"]
        if state.fault[0] == "out_of_memory":
            lines.append(
                "  a resume needs other operating settings: lower max_tokens_per_microbatch or "
                "set gradient_checkpointing=true"
            )
    if status == "crashed":
        lines += ["", f"crashed: {KILLED_HINT}"]
    if state.mismatches:
        lines += ["", "determinism mismatches (re-executed step differs from the logged one):"]
        lines += [
            f"  step {m.step}  {m.metric}: logged {fmt_value(m.logged)}, replayed "
            f"{fmt_value(m.replayed)} (seq {m.seq})"
            for m in state.mismatches
        ]
    if state.superseded:
        ranges = ", ".join(f"{lo}-{hi}" for lo, hi in state.superseded)
        lines += ["", f"superseded seqs (redone after a resume): {ranges}"]
    return lines


def _indent(text: str) -> list[str]:
    return [f"  {line}" for line in text.splitlines()]
