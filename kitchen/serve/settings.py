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
    loggers: tuple[str, ...] = ()
    """The trackers models created from now on send their step metrics to (``loggers=`` of a
    run, docs/trackers.md); each model records its own."""
    max_resident_models: int | None = None
    """At most this many served models hold their weights and optimizer state in memory; the
    one idle longest is checkpointed and unloaded to make room (None: no bound)."""
    max_queued_per_key: int = 256
    """Requests of one key accepted and not yet run; more get 429 with Retry-After."""
    concurrent_work: int = 2
    """Pieces of work (a request, a sample, a load) handed to the backend at once; the rest
    wait their turn in a fair order (round-robin over keys, then over a key's models)."""
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def serve_dir(self) -> Path:
        return self.home / "serve"
