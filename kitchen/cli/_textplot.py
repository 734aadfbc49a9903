"""Metric curves as plain text, for ``kitchen plot`` without ``--out``.

Written here rather than taken from a terminal-plotting library: a chart of a few hundred
points is a character grid, and owning it means no extra dependency, no API churn, and output
a test can compare character for character. Each run draws with its own mark (``*``, ``o``,
``+`` …); held-out points use the same mark, superseded steps a ``.``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kitchen.cli._series import Series

MARKS = "*o+x#@%&"


def _fmt(v: float) -> str:
    return f"{v:.4g}"


def chart(
    title: str, series: Sequence[Series], width: int = 64, height: int = 12, dimmed: bool = True
) -> list[str]:
    """The lines of one chart: title, a framed grid with y labels, x labels, legend."""
    pts = [p for s in series for p in (*s.points, *(s.superseded if dimmed else ()))]
    if not pts:
        return [title, "  (no points)"]
    x0, x1 = min(p[0] for p in pts), max(p[0] for p in pts)
    y0, y1 = min(p[1] for p in pts), max(p[1] for p in pts)
    grid = [[" "] * width for _ in range(height)]

    def put(x: float, y: float, mark: str, over: bool) -> None:
        col = 0 if x1 == x0 else round((x - x0) / (x1 - x0) * (width - 1))
        row = height // 2 if y1 == y0 else round((y1 - y) / (y1 - y0) * (height - 1))
        if over or grid[row][col] == " ":
            grid[row][col] = mark

    runs = list(dict.fromkeys(s.run_id for s in series))
    for s in series:
        mark = MARKS[runs.index(s.run_id) % len(MARKS)]
        if dimmed:
            for x, y in s.superseded:
                put(x, y, ".", over=False)
        for x, y in s.points:
            put(x, y, mark, over=True)
    labels = {0: _fmt(y1), height - 1: _fmt(y0)}
    if height > 2 and y1 != y0:
        mid = (height - 1) // 2  # labelled with the value its row stands for, exactly
        labels[mid] = _fmt(y1 - mid / (height - 1) * (y1 - y0))
    pad = max(len(v) for v in labels.values())
    lines = [title]
    for i, row in enumerate(grid):
        lines.append(f"{labels.get(i, ''):>{pad}} |{''.join(row)}".rstrip())
    lines.append(f"{'':>{pad}} +{'-' * width}")
    left, right = str(x0), str(x1)
    lines.append(f"{'':>{pad}}  {left}{right:>{width - len(left)}}  step")
    for s in series:
        mark = MARKS[runs.index(s.run_id) % len(MARKS)]
        extra = f", {len(s.superseded)} superseded (.)" if dimmed and s.superseded else ""
        lines.append(f"  {mark} {s.run_id} {s.label}: {len(s.points)} points{extra}")
    return lines
