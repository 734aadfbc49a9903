"""Test-only fault points: kill the process, or fail a write, exactly at a named dangerous moment.

Set ``KITCHEN_FAULT`` to ``NAME``, ``NAME@N`` (the Nth time that point is reached, 1-based) or
either followed by ``=ACTION``. Without an action the process SIGKILLs itself there, so
crash-recovery tests hit every dangerous moment on purpose instead of by timing luck. Actions:

- ``ENOSPC`` / ``EDQUOT``: raise ``OSError`` with that errno there, as a full disk or quota
  would (at a write point, inside the real write, so the real error handling sees it);
- ``ECONNREFUSED``: raise ``ConnectionRefusedError`` there, as a service that is gone would;
- ``SIGSTOP``: stop the process there, so that a test can break something outside it (stop
  the database server) and then let it continue with SIGCONT;
- ``SIGTERM`` / ``SIGUSR1``: the process sends itself that signal there (a preemption at a
  known moment; the kernel delivers it as it would a scheduler's);
- ``STALL``: print ``kitchen: fault point NAME: stalled`` to stderr and sleep there for an
  hour, as an operation that never returns would (signal handlers still run).

On several processes (``torchrun``) ``rankR/`` before the name arms the point only in the
process of rank R, and only in torchrun's first start of the group, so a restarted group runs
on (``rank1/stage:optim_step:before@3``). Rank 0 reaches the engine's points; every rank
reaches ``stage:<name>:before`` (a follower: before it runs the stage rank 0 dispatched).

``KITCHEN_PERTURB_STEP=N`` perturbs the step metric logged for step N when a resumed attempt
re-executes it (to prove ``DeterminismMismatch`` fires), for any workflow and without a stage
knowing. Both are read once at import; when unset the checks cost one comparison.

Point names used by the engine: ``flush:before``, ``flush:after``, ``stage:<name>:before``,
``stage:<name>:after``, ``append:before_commit`` (rows inserted, transaction not yet
committed; the store reports it to the hook that ``kitchen run``, ``resume`` and ``serve``
open it with), ``checkpoint:mid_write``, ``checkpoint:after_blob``,
``final:mid_write``, ``metrics:write`` (inside the append to ``metrics.jsonl``),
``evaluate:mid``, ``tinker:result`` (the Tinker adapter taking an SDK future's result).
"""

from __future__ import annotations

import errno
import os
import signal
import sys
import time
from collections.abc import Mapping
from typing import Any

from kitchen import settings

# Read light (the commands that write events import this module, and pydantic is slow to
# load): the validated settings are built only when one of these variables is set.
_ARMED = settings.text("fault") is not None or settings.text("perturb_step") is not None
_SETTINGS = settings.current() if _ARMED else None
_SPEC, _, _ACTION = (_SETTINGS.fault if _SETTINGS else "").partition("=")
if _SPEC.startswith("rank") and "/" in _SPEC:
    _RANK, _, _SPEC = _SPEC.partition("/")
    _MINE = f"rank{os.environ.get('RANK', '0')}" == _RANK
    if not _MINE or os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") != "0":
        _SPEC = ""
_NAME, _, _NTH = _SPEC.partition("@")
_TARGET = int(_NTH) if _NTH else 1
_ERRNOS = {"ENOSPC": errno.ENOSPC, "EDQUOT": errno.EDQUOT, "ECONNREFUSED": errno.ECONNREFUSED}
_SIGNALS = {"SIGSTOP": signal.SIGSTOP, "SIGTERM": signal.SIGTERM, "SIGUSR1": signal.SIGUSR1}
if _ACTION and _ACTION not in (*_ERRNOS, *_SIGNALS, "STALL"):
    raise ValueError(
        f"KITCHEN_FAULT action {_ACTION!r}: use one of {[*_ERRNOS, *_SIGNALS, 'STALL']}"
    )
_hits = 0
PERTURB_STEP: int | None = _SETTINGS.perturb_step if _SETTINGS else None


def point(name: str) -> None:
    """Act if ``name`` is the armed fault point (on its Nth hit): SIGKILL by default."""
    global _hits
    if not _NAME or name != _NAME:
        return
    _hits += 1
    if _hits < _TARGET:
        return
    if _ACTION in _ERRNOS:
        if _hits == _TARGET:  # once: the disk has room again (the service is back) after
            code = _ERRNOS[_ACTION]
            raise OSError(code, os.strerror(code))
    elif _ACTION in _SIGNALS:
        if _hits == _TARGET:
            os.kill(os.getpid(), _SIGNALS[_ACTION])
    elif _ACTION == "STALL":
        if _hits == _TARGET:
            print(f"kitchen: fault point {name}: stalled", file=sys.stderr, flush=True)
            time.sleep(3600)
    else:
        os.kill(os.getpid(), signal.SIGKILL)


def perturbed(
    metrics: Mapping[int, Mapping[str, Any]], metric: str | None, attempt: int
) -> Mapping[int, Mapping[str, Any]]:
    """Test-only: step PERTURB_STEP's ``metric`` plus one, when a resumed attempt logs it."""
    if PERTURB_STEP is None or attempt < 2 or metric is None or PERTURB_STEP not in metrics:
        return metrics
    step = metrics[PERTURB_STEP]
    if metric not in step:
        return metrics
    return {**metrics, PERTURB_STEP: {**step, metric: float(step[metric]) + 1.0}}
