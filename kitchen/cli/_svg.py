"""Hand-written inline SVG for ``kitchen report``: line charts and the attempt timeline.

Why by hand: the report must open with no network and no plotting library, and a chart is
only a few polylines, ticks and labels. Every drawn element carries a class (``line``,
``point``, ``superseded``, ``attempt``, ``resume``, ``checkpoint``, ``mismatch``) and
``data-*`` attributes, so a test — or a curious reader of the page source — can find what
was drawn.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kitchen.cli._series import Series
    from kitchen.engine.state import RunState

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b")
ENDED_COLOR = {
    "completed": "#2ca02c",
    "failed": "#d62728",
    "cancelled": "#7f7f7f",
    "interrupted": "#ff7f0e",
    "crashed": "#d62728",
    None: "#1f77b4",  # still running
}


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if hi == lo:
        return [lo]
    return [lo + (hi - lo) * i / (n - 1) for i in range(n)]


def thin(points: Sequence[tuple[int, float]], most: int = 1500) -> list[tuple[int, float]]:
    """At most about ``most`` points, evenly strided, the last one always kept.

    A 100,000-step run would otherwise put 100,000 coordinates per chart into the page; a
    chart 400 pixels wide cannot show more than a few hundred of them anyway.
    """
    if len(points) <= most:
        return list(points)
    stride = -(-len(points) // most)
    kept = list(points[::stride])
    if kept[-1] != points[-1]:
        kept.append(points[-1])
    return kept


def _num(v: float) -> str:
    return f"{v:.3g}"


def line_chart(title: str, series: Sequence[Series], width: int = 460, height: int = 250) -> str:
    """One metric of one or more runs: effective lines, dimmed superseded points, eval dots."""
    pad_l, pad_r, pad_t, pad_b = 64, 12, 26, 34
    pts = [p for s in series for p in (*s.points, *s.superseded)]
    xs = [p[0] for p in pts] or [0]
    ys = [p[1] for p in pts] or [0.0]
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(ys), max(ys)
    if x1 == x0:
        x0, x1 = x0 - 1, x1 + 1
    if y1 == y0:
        y0, y1 = y0 - 1, y1 + 1
    inner_w, inner_h = width - pad_l - pad_r, height - pad_t - pad_b

    def sx(x: float) -> float:
        return pad_l + (x - x0) / (x1 - x0) * inner_w

    def sy(y: float) -> float:
        return pad_t + (1 - (y - y0) / (y1 - y0)) * inner_h

    out = [
        f'<svg class="chart" data-metric="{escape(title)}" xmlns="http://www.w3.org/2000/svg" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img">',
        f"<title>{escape(title)}</title>",
        f'<text x="{width / 2}" y="16" text-anchor="middle" class="ctitle">{escape(title)}</text>',
        f'<rect x="{pad_l}" y="{pad_t}" width="{inner_w}" height="{inner_h}" class="frame"/>',
    ]
    for y in _ticks(y0, y1):
        out.append(
            f'<line x1="{pad_l}" x2="{pad_l + inner_w}" y1="{sy(y):.1f}" '
            f'y2="{sy(y):.1f}" class="grid"/>'
        )
        out.append(
            f'<text x="{pad_l - 4}" y="{sy(y) + 4:.1f}" text-anchor="end" '
            f'class="tick">{_num(y)}</text>'
        )
    for x in sorted({round(t) for t in _ticks(x0, x1)}):  # steps are whole numbers
        out.append(
            f'<text x="{sx(x):.1f}" y="{pad_t + inner_h + 14}" text-anchor="middle" '
            f'class="tick">{x:.0f}</text>'
        )
    out.append(
        f'<text x="{pad_l + inner_w / 2}" y="{height - 4}" text-anchor="middle" '
        'class="tick">step</text>'
    )
    runs = list(dict.fromkeys(s.run_id for s in series))
    for s in series:
        color = PALETTE[runs.index(s.run_id) % len(PALETTE)]
        data = f'data-run="{escape(s.run_id)}" data-kind="{s.kind}"'
        if s.superseded:
            for x, y in thin(s.superseded, 500):
                out.append(
                    f'<circle class="superseded" {data} cx="{sx(x):.1f}" cy="{sy(y):.1f}" '
                    f'r="2.5" fill="{color}" opacity="0.3"><title>superseded step {x}: '
                    f"{_num(y)}</title></circle>"
                )
        if len(s.points) > 1:
            coords = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in thin(s.points))
            dash = ' stroke-dasharray="5 3"' if s.kind == "eval" else ""
            out.append(
                f'<polyline class="line" {data} points="{coords}" fill="none" '
                f'stroke="{color}" stroke-width="1.6"{dash}/>'
            )
        if s.kind == "eval" or len(s.points) == 1:
            for x, y in s.points:
                out.append(
                    f'<circle class="point" {data} cx="{sx(x):.1f}" cy="{sy(y):.1f}" '
                    f'r="3.5" fill="{color}"><title>step {x}: {_num(y)}</title></circle>'
                )
    for i, run in enumerate(runs):
        color = PALETTE[i % len(PALETTE)]
        out.append(
            f'<text x="{pad_l + 6}" y="{pad_t + 14 + 13 * i}" fill="{color}" '
            f'class="legend">{escape(run)}</text>'
        )
    out.append("</svg>")
    return "\n".join(out)


def timeline(state: RunState, width: int = 920) -> str:
    """Attempts as bars over the run's seqs, superseded ranges hatched, resumes, checkpoints
    and determinism mismatches marked: how the run got where it is, at a glance."""
    last = max(state.last_seq, 1)
    pad_l, pad_r = 90, 16
    inner = width - pad_l - pad_r
    row_h, top = 26, 22
    height = top + row_h * max(len(state.attempts), 1) + 46

    def sx(seq: float) -> float:
        return pad_l + (seq - 1) / max(last - 1, 1) * inner

    out = [
        f'<svg class="timeline" xmlns="http://www.w3.org/2000/svg" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img">',
        "<title>attempts and resumes</title>",
        '<defs><pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse" '
        'patternTransform="rotate(45)"><line x1="0" y1="0" x2="0" y2="6" stroke="#999" '
        'stroke-width="2"/></pattern></defs>',
    ]
    bottom = top + row_h * max(len(state.attempts), 1)
    for lo, hi in state.superseded:
        out.append(
            f'<rect class="superseded-range" x="{sx(lo):.1f}" y="{top - 4}" '
            f'width="{max(sx(hi) - sx(lo), 3):.1f}" height="{bottom - top + 8}" '
            f'fill="url(#hatch)" opacity="0.6"><title>seqs {lo}-{hi} superseded by a '
            "resume</title></rect>"
        )
    for i, a in enumerate(state.attempts):
        end = state.attempts[i + 1].started_seq - 1 if i + 1 < len(state.attempts) else last
        y = top + row_h * i
        color = ENDED_COLOR.get(a.ended, "#1f77b4")
        how = a.ended or "running"
        out.append(
            f'<text x="{pad_l - 6}" y="{y + 15}" text-anchor="end" class="tick">'
            f"attempt {a.number}</text>"
        )
        out.append(
            f'<rect class="attempt" data-attempt="{a.number}" data-ended="{how}" '
            f'x="{sx(a.started_seq):.1f}" y="{y + 3}" '
            f'width="{max(sx(end) - sx(a.started_seq), 3):.1f}" height="{row_h - 8}" '
            f'fill="{color}" rx="3"><title>attempt {a.number}: seqs {a.started_seq}-{end}, '
            f"{how}</title></rect>"
        )
        if a.resumed_from is not None or a.number > 1:
            what = f"checkpoint seq {a.resumed_from}" if a.resumed_from else "the start"
            out.append(
                f'<path class="resume" data-attempt="{a.number}" '
                f'd="M{sx(a.started_seq):.1f},{y} l-6,-7 h12 z" fill="#000">'
                f"<title>attempt {a.number} resumed from {what}</title></path>"
            )
    for c in state.checkpoints:
        out.append(
            f'<line class="checkpoint" data-seq="{c.seq}" x1="{sx(c.seq):.1f}" '
            f'x2="{sx(c.seq):.1f}" y1="{bottom + 2}" y2="{bottom + 14}" stroke="#333" '
            f'stroke-width="2"><title>{escape(c.name)} (seq {c.seq}, {c.status})</title>'
            "</line>"
        )
    for m in state.mismatches:
        out.append(
            f'<circle class="mismatch" cx="{sx(m.seq):.1f}" cy="{bottom + 8}" r="5" '
            f'fill="#d62728"><title>determinism mismatch at step {m.step}: '
            f"{escape(m.metric)}</title></circle>"
        )
    for seq in sorted({1, last, *_ticks_int(last)}):
        out.append(
            f'<text x="{sx(seq):.1f}" y="{bottom + 30}" text-anchor="middle" '
            f'class="tick">{seq}</text>'
        )
    out.append(f'<text x="{pad_l - 6}" y="{bottom + 30}" text-anchor="end" class="tick">seq</text>')
    out.append("</svg>")
    return "\n".join(out)


def _ticks_int(last: int) -> list[int]:
    return [round(t) for t in _ticks(1, last)] if last > 1 else [1]
