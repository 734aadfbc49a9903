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

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from kitchen.errors import ConfigError

PREFIX = "KITCHEN_"
DEFAULT_HOME = "kitchen-runs"
DEFAULT_WINDOW_MS = 50.0
DEFAULT_SNAPSHOT_EVERY = 10_000


class Settings(BaseSettings):
    """One field per variable (``KITCHEN_`` + the field's name in capitals)."""

    model_config = SettingsConfigDict(
        env_prefix=PREFIX, env_ignore_empty=True, frozen=True, extra="ignore"
    )

    home: str = Field(
        "",
        description="the folder of the SQLite log and the run folders (empty: ./kitchen-runs)",
    )
    db_url: str | None = Field(
        None, description="the event store, any SQLAlchemy URL (default: sqlite in HOME)"
    )
    commit_window_ms: float = Field(
        DEFAULT_WINDOW_MS,
        ge=0,
        le=60_000,
        description="steps faster than this share one commit (0: every step commits)",
    )
    snapshot_every: int = Field(
        DEFAULT_SNAPSHOT_EVERY, ge=0, description="events between fold snapshots (0: none)"
    )
    pager: str | None = Field(
        None, description="the pager of `kitchen replay` on a terminal (default: $PAGER, less)"
    )
    debug: bool = Field(False, description="print the traceback of an unexpected error")
    fault: str = Field(
        "",
        description="tests only: POINT[@N][=ACTION] arms a fault point (SIGKILL by default)",
    )
    perturb_step: int | None = Field(
        None, ge=0, description="tests only: perturb this step's metric when it is re-executed"
    )

    @property
    def home_path(self) -> Path:
        return Path(self.home or DEFAULT_HOME).expanduser().resolve()


HINTS = {
    "home": "a folder path",
    "db_url": "a SQLAlchemy URL, e.g. sqlite:///PATH or postgresql+psycopg://USER@HOST/DB",
    "commit_window_ms": "a number of milliseconds from 0 to 60000 (default 50)",
    "snapshot_every": f"an integer >= 0 (0 turns snapshots off; default {DEFAULT_SNAPSHOT_EVERY})",
    "pager": "a command, e.g. less or cat",
    "debug": "1 or 0 (true/false)",
    "fault": "POINT[@N][=ENOSPC|EDQUOT|ECONNREFUSED|SIGSTOP]",
    "perturb_step": "a step number >= 0",
}


def env_name(field: str) -> str:
    return PREFIX + field.upper()


def _values() -> tuple[str | None, ...]:
    return tuple(os.environ.get(env_name(name)) for name in Settings.model_fields)


@lru_cache(maxsize=8)
def _parse(values: tuple[str | None, ...]) -> Settings:
    # An empty variable means its default, as an unset one does (env_ignore_empty).
    try:
        return Settings()  # type: ignore[call-arg]  # the fields come from the environment
    except ValidationError as exc:
        given = dict(zip(Settings.model_fields, values, strict=True))
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


__all__ = ["DEFAULT_HOME", "Settings", "current", "env_name"]
