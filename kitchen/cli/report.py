"""``kitchen report RUN_ID [--out FILE]``: one self-contained HTML page about a run.

The page is for someone who was not there: summary, config, lineage, attempts and resumes on a
timeline, a chart per metric, checkpoints and artifacts with their hashes, determinism
warnings and the verification result. It opens from a file with no network: charts are inline
SVG written by :mod:`kitchen.cli._svg`, styles are inline, and the one script (a toggle for
superseded steps) is inline too. Everything comes from the fold's workflow-neutral facts.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kitchen.io_faults import storage_fault

if TYPE_CHECKING:
    from kitchen.state import RunState
    from kitchen.store import EventStore, StoredEvent


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report",
        help="write one self-contained HTML page about a run (opens with no network)",
        description="Write an HTML report of a run: summary, config, attempts and resumes on a "
        "timeline, metric charts, checkpoints with hashes, determinism warnings and the "
        "verification result. Exit 1 (the page is still written) if verification fails.",
    )
    p.add_argument("run_id", metavar="RUN_ID")
    p.add_argument(
        "--out", metavar="FILE", help="where to write it (default: RUN_ID-report.html here)"
    )
    p.add_argument(
        "--metric",
        action="append",
        metavar="NAME",
        help="chart only this metric (repeatable); default: every metric that varies",
    )
    p.set_defaults(func=_report)


def verification(store: EventStore, state: RunState, rows: list[StoredEvent]) -> tuple[bool, str]:
    """``replay --verify``'s audit (hash chain, then live blobs), as (ok, one line)."""
    from kitchen.cli._common import kitchen_home
    from kitchen.cli.replay import verified_line, verify_blobs, verify_chain
    from kitchen.errors import KitchenError

    try:
        checked = verify_chain(store, state.run_id)
        return True, verified_line(verify_blobs(state, rows, kitchen_home(), checked))
    except KitchenError as exc:
        return False, str(exc)


def _report(args: argparse.Namespace) -> int:
    from kitchen.cli._common import displayed_status, load_state, open_store

    store = open_store()
    state, rows = load_state(store, args.run_id)
    status = displayed_status(store, state)
    ok, verdict = verification(store, state, rows)
    page = render(state, status, ok, verdict, args.metric)
    out = Path(args.out or f"{state.run_id}-report.html")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    try:
        tmp.write_text(page, encoding="utf-8")
        tmp.replace(out)  # a full or read-only disk leaves no half-written page behind
    except BaseException as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        fault = storage_fault(exc, str(out), then="try again")
        if fault is not None:
            raise fault from exc
        raise
    print(out)
    if not ok:
        print(f"kitchen: error: verification failed: {verdict} (see {out})", file=sys.stderr)
        return 1
    return 0


# --------------------------------------------------------------------------- rendering

_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:980px;color:#222}
h1{font-size:22px;margin-bottom:4px} h2{font-size:17px;border-bottom:1px solid #ddd;
padding-bottom:3px;margin-top:28px} table{border-collapse:collapse;margin:6px 0}
td,th{padding:3px 10px 3px 0;text-align:left;vertical-align:top} th{color:#555;font-weight:600}
code,.hash{font-family:ui-monospace,monospace;font-size:12px} pre{background:#f6f6f6;
padding:8px;overflow:auto} .ok{color:#2ca02c;font-weight:600} .bad{color:#d62728;
font-weight:600} .warn{background:#fff3e0;padding:6px 10px;border-left:4px solid #ff7f0e}
.charts{display:flex;flex-wrap:wrap;gap:8px} svg text{font:11px system-ui,sans-serif}
svg .ctitle{font-weight:600;font-size:12px} svg .frame{fill:none;stroke:#bbb}
svg .grid{stroke:#eee} svg .tick{fill:#555} .muted{color:#777}
svg.timeline{max-width:100%;height:auto}
body.hide-superseded .superseded{display:none}
"""

_SCRIPT = """
document.getElementById('toggle-superseded').addEventListener('change', function (e) {
  document.body.classList.toggle('hide-superseded', !e.target.checked);
});
document.body.dataset.charts = document.querySelectorAll('svg.chart').length;
document.body.dataset.attempts = document.querySelectorAll('svg.timeline .attempt').length;
"""


def _kv(rows: list[tuple[str, Any]]) -> str:
    cells = "".join(f"<tr><th>{escape(k)}</th><td>{v}</td></tr>" for k, v in rows)
    return f"<table>{cells}</table>"


def _grid(headers: list[str], rows: list[list[str]], cls: str = "") -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f'<table class="{cls}"><tr>{head}</tr>{body}</table>'


def render(
    state: RunState, status: str, ok: bool, verdict: str, metrics: list[str] | None = None
) -> str:
    from kitchen._version import __version__
    from kitchen.cli._common import fmt_time, fmt_value

    e = escape
    title = f"kitchen run {state.run_id}"
    step = f"{state.step}" + (f" of {state.total_steps}" if state.total_steps else "")
    verdict_html = f'<span class="{"ok" if ok else "bad"}">{e(verdict)}</span>'
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{e(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{e(title)}</h1>",
        f'<p class="muted">recipe {e(state.recipe or "-")} · workflow '
        f"{e(state.workflow or '-')} · status <b>{e(status)}</b> · step {e(step)}</p>",
        '<h2 id="summary">Summary</h2>',
        _kv(
            [
                ("status", e(status)),
                ("step", e(step)),
                ("created", e(fmt_time(state.created_at)) + " UTC"),
                ("last update", e(fmt_time(state.updated_at)) + " UTC"),
                ("events", str(state.last_seq)),
                ("attempts", str(len(state.attempts))),
                ("seed", e(fmt_value(state.seed))),
                ("config hash", f'<span class="hash">{e(state.config_hash or "-")}</span>'),
                (
                    "data fingerprint",
                    f'<span class="hash">{e(state.data_fingerprint or "-")}</span>',
                ),
                ("verification", verdict_html),
            ]
        ),
    ]
    parts += _problems(state)
    parts += _timeline_section(state)
    parts += _metrics_section(state, metrics)
    parts += _blobs_section(state)
    parts += [
        '<h2 id="lineage">Lineage</h2>',
        _grid(
            ["role", "source", "run", "what", "sha256"],
            [
                [
                    e(r.role),
                    e(r.source),
                    e(r.run_id or "-"),
                    e(r.what or "-"),
                    f'<span class="hash">{e(r.sha256 or "-")}</span>',
                ]
                for r in state.lineage
            ],
        )
        if state.lineage
        else '<p class="muted">none: the run started from its base model</p>',
        '<h2 id="config">Config</h2>',
        f"<pre>{e(json.dumps(state.config, indent=2, sort_keys=True))}</pre>",
        '<h2 id="versions">Versions</h2>',
        _kv([(k, e(str(v))) for k, v in sorted(state.versions.items())]),
        '<h2 id="verification">Verification</h2>',
        f'<p>{verdict_html}</p><p class="muted">The hash chain of all {state.last_seq} '
        "events was recomputed, then every live local checkpoint and artifact was hashed "
        "again under KITCHEN_HOME (as <code>kitchen replay --verify</code> does).</p>",
        f'<p class="muted">Written by kitchen {e(__version__)} at '
        f"{datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC. Replay: "
        f"<code>kitchen replay {e(state.run_id)}</code></p>",
        f"<script>{_SCRIPT}</script>",
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def _problems(state: RunState) -> list[str]:
    e = escape
    out = []
    if state.error:
        out.append(f'<p class="warn"><b>failed</b>: {e(state.error[0])}: {e(state.error[1])}</p>')
    if state.cancel_reason:
        out.append(f'<p class="warn"><b>cancelled</b>: {e(state.cancel_reason)}</p>')
    out.append('<h2 id="determinism">Determinism</h2>')
    if state.mismatches:
        rows = [
            [str(m.step), e(m.metric), e(f"{m.logged:.6g}"), e(f"{m.replayed:.6g}"), str(m.seq)]
            for m in state.mismatches
        ]
        out.append(
            f'<p class="warn">{len(rows)} determinism warning(s): a resumed attempt '
            "re-ran steps and got values other than those the superseded attempt "
            "logged.</p>"
        )
        out.append(_grid(["step", "metric", "logged", "replayed", "seq"], rows, "mismatches"))
    else:
        out.append('<p class="muted">no determinism mismatches recorded</p>')
    return out


def _metrics_section(state: RunState, metrics: list[str] | None) -> list[str]:
    from kitchen.cli._common import fmt_value
    from kitchen.cli._series import run_series, select
    from kitchen.cli._svg import line_chart

    out = ['<h2 id="metrics">Metrics</h2>']
    series = run_series(state)
    if not series:
        return [*out, '<p class="muted">no metrics logged</p>']
    names = select(series, metrics)
    out.append(
        '<p><label><input type="checkbox" id="toggle-superseded" checked> show steps '
        "superseded by a resume (dimmed)</label></p>"
    )
    out.append('<div class="charts">')
    for name in names:
        chosen = [s for s in series if s.name == name]
        out.append(line_chart(chosen[0].label if len(chosen) == 1 else name, chosen))
    out.append("</div>")
    final = state.final_metrics or state.last_metrics()
    if final:
        label = "final metrics" if state.final_metrics else "last logged step"
        out.append(f"<h3>{label}</h3>")
        out.append(_kv([(k, escape(fmt_value(v))) for k, v in sorted(final.items())]))
    if state.eval_metrics:
        names_eval = sorted({k for m in state.eval_metrics.values() for k in m})
        rows = [
            [str(step), *(escape(fmt_value(m.get(n))) for n in names_eval)]
            for step, m in sorted(state.eval_metrics.items())
        ]
        out += ["<h3>held-out evaluations</h3>", _grid(["step", *names_eval], rows)]
    return out


def _timeline_section(state: RunState) -> list[str]:
    from kitchen.cli._common import fmt_time
    from kitchen.cli._svg import timeline

    e = escape
    rows = [
        [
            str(a.number),
            e(a.worker),
            e(fmt_time(a.started_at)),
            str(a.started_seq),
            e(a.ended or "running"),
            e("-" if a.resumed_from is None else f"seq {a.resumed_from}"),
        ]
        for a in state.attempts
    ]
    ranges = ", ".join(f"{lo}-{hi}" for lo, hi in state.superseded)
    return [
        '<h2 id="attempts">Attempts and resumes</h2>',
        timeline(state),
        '<p class="muted">bars: attempts over the run\'s seqs (green completed, orange '
        "interrupted, red failed or crashed, blue running); triangles: resumes; hatched: seqs "
        "superseded by a resume; ticks below: checkpoints; red dots: determinism mismatches."
        "</p>",
        _grid(
            ["attempt", "worker", "started (UTC)", "seq", "ended", "resumed from"], rows, "attempts"
        ),
        f"<p>superseded seqs: {e(ranges)}</p>" if ranges else "",
    ]


def _blobs_section(state: RunState) -> list[str]:
    e = escape
    ck = [
        [
            e(c.name),
            str(c.step),
            e(c.status),
            str(c.seq),
            e(c.uri),
            f'<span class="hash">{e(c.sha256)}</span>',
            str(c.bytes),
        ]
        for c in state.checkpoints
    ]
    ar = [
        [
            e(a.kind),
            "-" if a.step is None else str(a.step),
            "superseded" if state.is_superseded(a.seq) else ("deleted" if a.deleted else "live"),
            str(a.seq),
            e(a.uri),
            f'<span class="hash">{e(a.sha256)}</span>',
            str(a.bytes),
        ]
        for a in state.artifacts
    ]
    return [
        '<h2 id="checkpoints">Checkpoints</h2>',
        _grid(["name", "step", "status", "seq", "uri", "sha256", "bytes"], ck, "checkpoints")
        if ck
        else '<p class="muted">none</p>',
        '<h2 id="artifacts">Artifacts</h2>',
        _grid(["kind", "step", "status", "seq", "uri", "sha256", "bytes"], ar, "artifacts")
        if ar
        else '<p class="muted">none</p>',
    ]
