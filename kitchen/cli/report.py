"""``kitchen report RUN_ID [--out FILE]``: one self-contained HTML page about a run.

The page is for someone who was not there: summary, config, lineage, attempts and resumes on a
timeline, a chart per metric, checkpoints and artifacts with their hashes, determinism
warnings and the verification result. It opens from a file with no network: charts are inline
SVG written by :mod:`kitchen.cli._svg`, styles are inline, and the one script (a toggle for
superseded steps) is inline too. Everything comes from the fold's workflow-neutral facts; the
markup is the Jinja2 template ``templates/report.html.j2`` (with its ``report.css`` and
``report.js``), autoescaped so that nothing a run logged can become markup.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import jinja2

    from kitchen.engine.state import RunState
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
    from kitchen.cli._common import displayed_status, load_state, open_store, write_whole

    store = open_store()
    state, rows = load_state(store, args.run_id)
    status = displayed_status(store, state)
    ok, verdict = verification(store, state, rows)
    page = render(state, status, ok, verdict, args.metric)
    out = Path(args.out or f"{state.run_id}-report.html")
    out.parent.mkdir(parents=True, exist_ok=True)
    write_whole(out, [page])
    print(out)
    if not ok:
        print(f"kitchen: error: verification failed: {verdict} (see {out})", file=sys.stderr)
        return 1
    return 0


# --------------------------------------------------------------------------- rendering


def render(
    state: RunState, status: str, ok: bool, verdict: str, metrics: list[str] | None = None
) -> str:
    """The page: ``templates/report.html.j2`` filled from the fold's facts and the charts."""
    from markupsafe import Markup

    from kitchen._version import __version__
    from kitchen.cli._series import run_series, select
    from kitchen.cli._svg import line_chart, timeline

    series = run_series(state)
    charts = []
    for name in select(series, metrics) if series else []:
        chosen = [s for s in series if s.name == name]
        # the SVG is markup drawn by _svg, which escapes every text it puts in
        charts.append(Markup(line_chart(chosen[0].label if len(chosen) == 1 else name, chosen)))
    return _template().render(
        state=state,
        status=status,
        ok=ok,
        verdict=verdict,
        title=f"kitchen run {state.run_id}",
        step=f"{state.step}" + (f" of {state.total_steps}" if state.total_steps else ""),
        timeline=Markup(timeline(state)),
        has_series=bool(series),
        charts=charts,
        final=state.final_metrics or state.last_metrics(),
        eval_names=sorted({k for m in state.eval_metrics.values() for k in m}),
        config_json=json.dumps(state.config, indent=2, sort_keys=True),
        version=__version__,
        written_at=f"{datetime.now(UTC):%Y-%m-%d %H:%M:%S}",
    )


def _template() -> jinja2.Template:
    """The report's template, autoescaped: a value from the log is always text on the page."""
    import jinja2

    from kitchen.cli._common import fmt_time, fmt_value

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("kitchen.cli", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["time"] = fmt_time
    env.filters["value"] = fmt_value
    return env.get_template("report.html.j2")
