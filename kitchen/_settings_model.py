"""The pydantic-settings model behind ``kitchen.settings`` (imported only when a value needs
validating, so that light commands such as ``kitchen runs`` start without pydantic)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from kitchen.settings import (
    DEFAULT_DIST_TIMEOUT_S,
    DEFAULT_GRACE_S,
    DEFAULT_HOME,
    DEFAULT_SNAPSHOT_EVERY,
    DEFAULT_WINDOW_MS,
    PREFIX,
)


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
    dist_timeout_s: float = Field(
        DEFAULT_DIST_TIMEOUT_S,
        gt=0,
        description="on several processes, how long a collective waits for the others",
    )
    grace_s: float = Field(
        DEFAULT_GRACE_S,
        gt=0,
        description="after SIGTERM or SIGUSR1, how long a run has to save a preemption "
        "checkpoint before it exits anyway (capped at 25 under torchrun)",
    )
    blobs_url: str | None = Field(
        None,
        description="where checkpoints and other blobs live: a folder or an fsspec URL "
        "(s3://, gs://, …; default: KITCHEN_HOME)",
    )
    fault: str = Field(
        "",
        description="tests only: [rankR/]POINT[@N][=ACTION] arms a fault point (SIGKILL by "
        "default)",
    )
    perturb_step: int | None = Field(
        None, ge=0, description="tests only: perturb this step's metric when it is re-executed"
    )

    @property
    def home_path(self) -> Path:
        return Path(self.home or DEFAULT_HOME).expanduser().resolve()
