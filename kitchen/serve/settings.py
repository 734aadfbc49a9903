"""The server's settings: one frozen record built by the CLI (or a test) and shared by all parts.

Limits live here so that the security checks (body size, batch size, sampling size) read one
place, and so that tests can shrink them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_BASE_MODELS = ("kitchen/tiny",)


@dataclass(frozen=True, slots=True)
class ServeSettings:
    home: Path
    """KITCHEN_HOME: the database (unless db_url says otherwise), blobs, keys and weights."""
    db_url: str | None = None
    checkpoint_every: int = 10
    """A server-side checkpoint every N optimizer steps: a restart re-applies at most N."""
    base_models: tuple[str, ...] = DEFAULT_BASE_MODELS
    """The only base models a client may name: a base model is loaded from disk, so an
    arbitrary name would let a client read any folder on the machine."""
    max_body_bytes: int = 64 * 1024 * 1024
    max_batch_datums: int = 1024
    max_batch_tokens: int = 1_000_000
    max_samples: int = 64
    max_sample_tokens: int = 2048
    long_poll_s: float = 20.0
    """How long retrieve_future holds a request open before answering try_again (< the SDK's
    45 s read timeout)."""
    device: str = "auto"
    max_tokens_per_microbatch: int | None = 16384
    """The local backend's micro-batch budget for models created from now on; each model
    records its own, so a restart rebuilds it with the value it was trained with."""
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def serve_dir(self) -> Path:
        return self.home / "serve"
