"""The ``KITCHEN_*`` environment variables, read in one place.

Every module asks :func:`current` instead of reading ``os.environ``, so a variable has one
name, one type, one default and one error message. ``docs/settings.md`` lists them in one
table (a test checks the table against this class). A bad value is refused in one line per
variable — what was given, and what to set instead — before anything is written.

The values are read from the environment when asked for (tests and embedding programs change
it); a parse is cached for as long as the variables stay the same.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kitchen.errors import ConfigError

if TYPE_CHECKING:
    from kitchen._settings_model import Settings

PREFIX = "KITCHEN_"
DEFAULT_HOME = "kitchen-runs"
DEFAULT_WINDOW_MS = 50.0
DEFAULT_SNAPSHOT_EVERY = 10_000
DEFAULT_DIST_TIMEOUT_S = 600.0
DEFAULT_GRACE_S = 25.0


HINTS = {
    "home": "a folder path",
    "db_url": "a SQLAlchemy URL, e.g. sqlite:///PATH or postgresql+psycopg://USER@HOST/DB",
    "commit_window_ms": "a number of milliseconds from 0 to 60000 (0 commits every step; "
    "default 50)",
    "snapshot_every": f"an integer >= 0 (0 turns snapshots off; default {DEFAULT_SNAPSHOT_EVERY})",
    "pager": "a command, e.g. less or cat",
    "debug": "1 or 0 (true/false)",
    "dist_timeout_s": f"a number of seconds above 0 (default {DEFAULT_DIST_TIMEOUT_S:g})",
    "grace_s": f"a number of seconds above 0 (default {DEFAULT_GRACE_S:g})",
    "blobs_url": "a folder path or an fsspec URL, e.g. s3://BUCKET/PREFIX (default: KITCHEN_HOME)",
    "fault": "[rankR/]POINT[@N][=ENOSPC|EDQUOT|ECONNREFUSED|SIGSTOP|SIGTERM|SIGUSR1|STALL]",
    "perturb_step": "a step number >= 0",
}


def env_name(field: str) -> str:
    return PREFIX + field.upper()


NAMES = tuple(HINTS)  # the fields of Settings, in its order (a test checks)


def _values() -> tuple[str | None, ...]:
    return tuple(os.environ.get(env_name(name)) for name in NAMES)


@lru_cache(maxsize=8)
def _parse(values: tuple[str | None, ...]) -> Settings:
    from pydantic import ValidationError

    from kitchen._settings_model import Settings

    # An empty variable means its default, as an unset one does (env_ignore_empty).
    try:
        return Settings()  # type: ignore[call-arg]  # the fields come from the environment
    except ValidationError as exc:
        given = dict(zip(NAMES, values, strict=True))
        lines = []
        for err in exc.errors():
            field = str(err["loc"][0]) if err["loc"] else "?"
            lines.append(
                f"{env_name(field)}={given.get(field) or ''!r} is not valid ({err['msg']}); "
                f"set it to {HINTS.get(field, 'a valid value')}"
            )
        raise ConfigError("\n".join(lines)) from None


def current() -> Settings:
    """The settings as the environment says now (refused in one line per bad variable)."""
    return _parse(_values())


def text(name: str) -> str | None:
    """A variable's raw text (None when unset or empty), for the few light readers."""
    value = os.environ.get(env_name(name), "").strip()
    return value or None


def home() -> Path:
    """``KITCHEN_HOME``, absolute: a path, nothing to validate, so it is read without building
    the model (the light commands start without pydantic)."""
    return Path(text("home") or DEFAULT_HOME).expanduser().resolve()


def db_url() -> str | None:
    """``KITCHEN_DB_URL`` (None: SQLite in KITCHEN_HOME), read light like ``home``."""
    return text("db_url")


def __getattr__(name: str) -> Any:
    if name == "Settings":  # the model, for whoever needs the class itself
        from kitchen._settings_model import Settings

        return Settings
    raise AttributeError(name)


__all__ = ["DEFAULT_HOME", "NAMES", "current", "db_url", "env_name", "home"]
