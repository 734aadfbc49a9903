"""``kitchen plot RUN [RUN …]``: metric curves against step, as a PNG or in the terminal.

One panel per metric, one line per run; held-out (evaluation) metrics are drawn with markers
since they are measured at a few steps only. A resumed run is drawn from its effective history,
and the steps a resume superseded are drawn dimmed (``--no-superseded`` hides them), so the
picture shows both what the run *is* and what it went through. matplotlib (PNG) is imported
only here, only with ``--out``: the other commands never pay for it.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from kitchen.errors import ConfigError

if TYPE_CHECKING:
    from kitchen.cli._series import Series


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "plot",
        help="plot training and held-out metrics of runs against step (PNG or terminal)",
        description="Plot the training and held-out metrics of one or more runs against step: "
        "a PNG with --out (matplotlib), else as text in the terminal. Resumed runs show "
        "their effective history; superseded steps are drawn dimmed.",
    )
    p.add_argument("run_ids", metavar="RUN", nargs="+")
    p.add_argument(
        "--metric",
        action="append",
        metavar="NAME",
        help="a metric to plot (repeatable); default: every metric that varies",
    )
    p.add_argument("--out", metavar="FILE.png", help="write a PNG here instead of the terminal")
    p.add_argument(
        "--no-superseded", action="store_true", help="do not draw the steps a resume superseded"
    )
    p.set_defaults(func=_plot)


Branch = tuple[str, str, int]  # (fork, parent, step): where a plotted fork leaves its parent


def gather(
    run_ids: Sequence[str], metrics: Sequence[str] | None
) -> tuple[list[str], list[Series], list[Branch]]:
    """Fold the runs and pick the metrics: (names in panel order, every series of the runs,
    the branch points of the runs that are forks of another plotted run)."""
    from kitchen.cli._common import fold_run, open_store
    from kitchen.cli._series import run_series, select

    store = open_store()
    series: list[Series] = []
    forks: list[Branch] = []
    plotted = list(dict.fromkeys(run_ids))
    for run_id in plotted:
        state = fold_run(store, run_id)
        series += run_series(state)
        if state.fork is not None and state.fork.run_id in plotted:
            forks.append((run_id, state.fork.run_id, state.fork.step))
    store.close()
    if not series:
        raise ConfigError(f"no metrics logged by {', '.join(run_ids)} yet; nothing to plot")
    return select(series, metrics), series, forks


def _plot(args: argparse.Namespace) -> int:
    names, series, forks = gather(args.run_ids, args.metric)
    if args.out:
        out = Path(args.out)
        if out.suffix.lower() != ".png":
            raise ConfigError(f"--out {args.out}: write a .png file")
        png(names, series, out, dimmed=not args.no_superseded, forks=forks)
        print(out)
    else:
        terminal(names, series, dimmed=not args.no_superseded, forks=forks)
    return 0


def png(
    names: Sequence[str],
    series: Sequence[Series],
    out: Path,
    dimmed: bool,
    forks: Sequence[Branch] = (),
) -> None:
    try:
        import matplotlib
    except ImportError:
        raise ConfigError(
            "--out needs matplotlib: pip install 'kitchen-posttrain[plot]' (or matplotlib)"
        ) from None
    matplotlib.use("Agg")  # no display: a file is the product
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    cols = min(3, len(names))
    rows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3.4 * rows), squeeze=False)
    run_ids = list(dict.fromkeys(s.run_id for s in series))
    colors = {r: f"C{i % 10}" for i, r in enumerate(run_ids)}
    for ax, name in zip(axes.flat, names, strict=False):
        for s in (s for s in series if s.name == name):
            lone = len(s.points) == 1  # a line of one point draws nothing: mark it
            style = {"marker": "o", "linestyle": "--"} if s.kind == "eval" or lone else {}
            if s.points:
                xs, ys = zip(*s.points, strict=True)
                ax.plot(xs, ys, color=colors[s.run_id], label=f"{s.run_id} {s.label}", **style)
            if dimmed and s.superseded:
                xs, ys = zip(*s.superseded, strict=True)
                ax.plot(
                    xs,
                    ys,
                    color=colors[s.run_id],
                    alpha=0.3,
                    marker=".",
                    linestyle=":",
                    label=f"{s.run_id} superseded",
                )
        for fork, parent, step in forks:
            ax.axvline(
                step,
                color=colors.get(fork, "grey"),
                linestyle="-.",
                alpha=0.6,
                label=f"{fork} forks from {parent}@{step}",
            )
        ax.set_title(name)
        ax.set_xlabel("step")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # steps are whole numbers
        ax.grid(alpha=0.3)
        ax.legend(fontsize="x-small")
    for ax in list(axes.flat)[len(names) :]:
        ax.set_visible(False)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)


def terminal(
    names: Sequence[str], series: Sequence[Series], dimmed: bool, forks: Sequence[Branch] = ()
) -> None:
    from kitchen.cli._textplot import chart

    blocks = ["\n".join(chart(n, [s for s in series if s.name == n], dimmed=dimmed)) for n in names]
    marks = [f"| {fork} forks from {parent} at step {step}" for fork, parent, step in forks]
    print("\n\n".join([*blocks, *(["\n".join(marks)] if marks else [])]))
