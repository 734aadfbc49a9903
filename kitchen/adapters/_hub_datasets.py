"""Hub datasets: ``datasets.load_dataset`` online, the HF hub cache when offline.

Offline (HF_HUB_OFFLINE or HF_DATASETS_OFFLINE set, or the hub unreachable) the repo's
cached snapshot folder is loaded as a local folder, which ``datasets`` reads without any
network. One quick request decides whether the hub is reachable first, since
``load_dataset`` retries for half a minute against a network that is down. ``datasets``
reads those variables once at import; this module reads them on every call and passes
the cache folders explicitly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kitchen.adapters import _hf_env as env
from kitchen.adapters.hf_hub import HFHubClient
from kitchen.errors import ConfigError, NotFound


def load_hub(source: str, split: str, streaming: bool, token: str | None) -> Any:
    import datasets

    repo, _, config = source.partition(":")
    kwargs: dict[str, Any] = {
        "split": split,
        "streaming": streaming,
        "cache_dir": str(env.datasets_cache()),
    }
    client = HFHubClient(token, repo_type="dataset")
    if not env.datasets_offline() and client.reachable(repo):
        try:
            return _split_checked(
                lambda: datasets.load_dataset(repo, config or None, token=token, **kwargs),
                repo,
                config,
                source,
                split,
            )
        except Exception as exc:
            if not _unreachable(exc):
                known = _converted(exc, repo)
                if known is None:
                    raise
                raise known from None
    folder = str(client.snapshot(repo, local_only=True))
    return _split_checked(
        lambda: datasets.load_dataset(folder, config or None, **kwargs),
        folder,
        config,
        source,
        split,
    )


def _split_checked(load: Callable[[], Any], path: str, config: str, source: str, split: str) -> Any:
    """Turn datasets' unknown split and config errors into one-line ConfigErrors."""
    import datasets

    try:
        return load()
    except ValueError as exc:
        text = str(exc).strip()
        if text.startswith("Unknown split"):
            names = datasets.get_dataset_split_names(path, config or None)
            raise ConfigError(
                f"{source} has no split {split!r}; its splits are {', '.join(names)}"
            ) from None
        if text.startswith("BuilderConfig"):
            raise ConfigError(
                f"{source}: {text.splitlines()[0]}; pick one of those configs as 'org/name:config'"
            ) from None
        raise


def _unreachable(exc: BaseException) -> bool:
    from huggingface_hub.errors import LocalEntryNotFoundError

    return isinstance(exc, LocalEntryNotFoundError) or env.is_unreachable(exc)


def _converted(exc: Exception, repo: str) -> NotFound | None:
    from datasets.exceptions import DataFilesNotFoundError, DatasetNotFoundError

    if isinstance(exc, DataFilesNotFoundError):
        return NotFound(f"dataset {repo!r} has no data files datasets can read; check the repo")
    if isinstance(exc, DatasetNotFoundError):
        return NotFound(
            f"dataset {repo!r} is not on the hub or is private; check the name or HF_TOKEN"
        )
    return None
