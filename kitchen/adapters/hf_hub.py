"""The Hugging Face Hub, or its local cache when the hub is out of reach.

Training machines are often offline, so every call works from the cache when
HF_HUB_OFFLINE is set or the hub cannot be reached, and a file that is not cached is an
``OfflineMiss`` that says where kitchen looked. huggingface_hub's errors become kitchen
errors with one-line messages; tokens are scrubbed from them and never logged.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from kitchen.adapters import _hf_env as env
from kitchen.errors import ConfigError, KitchenError, NotFound, OfflineMiss

T = TypeVar("T")
REPO_TYPES = ("model", "dataset", "space")


class HFHubClient:
    """Reads repos of one type (models by default) from the hub or the HF cache.

    ``token`` defaults to what huggingface_hub finds itself (HF_TOKEN, the stored login).
    """

    def __init__(self, token: str | None = None, *, repo_type: str = "model") -> None:
        if repo_type not in REPO_TYPES:
            choices = ", ".join(REPO_TYPES)
            raise ConfigError(f"repo type {repo_type!r} is unknown; use one of {choices}")
        self._token = token
        self.repo_type = repo_type

    def __repr__(self) -> str:
        return f"HFHubClient(repo_type={self.repo_type!r}, token={'***' if self._token else None})"

    def download_file(self, repo_id: str, filename: str, *, revision: str | None = None) -> Path:
        from huggingface_hub import hf_hub_download

        with self._translated(repo_id, revision, filename):
            path = hf_hub_download(
                repo_id,
                filename,
                repo_type=self.repo_type,
                revision=revision,
                cache_dir=env.hub_cache(),
                local_files_only=env.hub_offline(),
                token=self._token,
                endpoint=env.endpoint(),
            )
        return Path(str(path))

    def snapshot(
        self, repo_id: str, *, revision: str | None = None, local_only: bool = False
    ) -> Path:
        """The repo's folder in the cache, downloading what is missing when online.

        ``local_only`` skips the hub even when it could be reached, for callers that
        already know it cannot be.
        """
        with self._translated(repo_id, revision):
            return self._snapshot(repo_id, revision, local_only=local_only or env.hub_offline())

    def list_files(self, repo_id: str, *, revision: str | None = None) -> list[str]:
        """Sorted repo paths; offline, those of the cached snapshot.

        Read from the repo info (one request) rather than the tree listing, which
        huggingface_hub retries for half a minute when the network is down.
        """
        return list(self.model_info(repo_id, revision=revision)["siblings"])

    def model_info(self, repo_id: str, *, revision: str | None = None) -> dict[str, Any]:
        """``id``, ``sha`` (the commit) and ``siblings`` (file paths) always; online also
        ``tags``, ``pipeline_tag`` and ``library_name``."""

        def online(api: Any) -> dict[str, Any]:
            info = api.repo_info(repo_id, revision=revision, repo_type=self.repo_type)
            return {
                "id": info.id,
                "sha": info.sha,
                "siblings": sorted(s.rfilename for s in info.siblings or []),
                "tags": list(info.tags or []),
                "pipeline_tag": getattr(info, "pipeline_tag", None),
                "library_name": getattr(info, "library_name", None),
            }

        def cached(folder: Path) -> dict[str, Any]:
            return {"id": repo_id, "sha": folder.name, "siblings": _files_under(folder)}

        return self._online_or_cached(repo_id, revision, online, cached)

    def reachable(self, repo_id: str) -> bool:
        """Whether the hub answers for this repo (False offline or when it cannot be reached).

        One quick request: callers ask before handing a repo to a library that would
        retry for half a minute against a network that is down. A hub answer that the
        repo does not exist raises NotFound.
        """
        from huggingface_hub import HfApi

        if env.hub_offline():
            return False
        with self._translated(repo_id, None):
            try:
                HfApi(endpoint=env.endpoint(), token=self._token).repo_info(
                    repo_id, repo_type=self.repo_type
                )
            except Exception as exc:
                if env.is_unreachable(exc):
                    return False
                raise
        return True

    # ------------------------------------------------------------------ internals

    def _snapshot(self, repo_id: str, revision: str | None, *, local_only: bool) -> Path:
        from huggingface_hub import snapshot_download

        path = snapshot_download(
            repo_id,
            repo_type=self.repo_type,
            revision=revision,
            cache_dir=env.hub_cache(),
            local_files_only=local_only,
            token=self._token,
            endpoint=env.endpoint(),
        )
        return Path(str(path))

    def _online_or_cached(
        self,
        repo_id: str,
        revision: str | None,
        online: Callable[[Any], T],
        cached: Callable[[Path], T],
    ) -> T:
        """Ask the hub; if it cannot be reached (or offline mode is on), read the cache."""
        from huggingface_hub import HfApi

        with self._translated(repo_id, revision):
            if not env.hub_offline():
                try:
                    return online(HfApi(endpoint=env.endpoint(), token=self._token))
                except Exception as exc:
                    if not env.is_unreachable(exc):
                        raise
            return cached(self._snapshot(repo_id, revision, local_only=True))

    @contextmanager
    def _translated(
        self, repo_id: str, revision: str | None, filename: str | None = None
    ) -> Iterator[None]:
        """Turn huggingface_hub's errors into kitchen's, with the tokens scrubbed."""
        try:
            yield
        except KitchenError:
            raise
        except Exception as exc:
            error = self._convert(exc, repo_id, revision, filename)
            if error is None:
                raise
            raise type(error)(env.scrub(str(error), env.secrets(self._token))) from None

    def _convert(
        self, exc: Exception, repo_id: str, revision: str | None, filename: str | None
    ) -> KitchenError | None:
        from huggingface_hub import errors as hf

        what = f"{self.repo_type} {repo_id!r}" + (f" at revision {revision!r}" if revision else "")
        subject = f"file {filename!r} of {what}" if filename else what
        missing = hf.LocalEntryNotFoundError | hf.IncompleteSnapshotError
        if isinstance(exc, missing) or env.is_unreachable(exc):
            return OfflineMiss(_miss_message(subject))
        if isinstance(exc, hf.GatedRepoError):
            return NotFound(f"{what} is gated; accept its terms on the hub and set HF_TOKEN")
        if isinstance(exc, hf.RepositoryNotFoundError):
            return NotFound(f"{what} is not on the hub or is private; check the name or HF_TOKEN")
        if isinstance(exc, hf.RevisionNotFoundError):
            return NotFound(f"{what} does not exist; check the branch, tag or commit")
        if isinstance(exc, hf.EntryNotFoundError):
            return NotFound(f"{subject} does not exist; check the file name")
        if isinstance(exc, hf.HFValidationError):
            return ConfigError(f"{repo_id!r} is not a valid repo id; use 'org/name'")
        if isinstance(exc, hf.HfHubHTTPError):
            status = exc.response.status_code if exc.response is not None else "?"
            return KitchenError(f"the hub refused {subject} (HTTP {status}); check HF_TOKEN, retry")
        return None


def _miss_message(subject: str) -> str:
    if os.environ.get("HF_HUB_CACHE"):
        where = f"HF_HUB_CACHE={env.hub_cache()}"
    else:
        where = f"HF_HOME={env.hf_home()}"
    offline = env.hub_offline()
    reason = f"the hub cannot be reached ({'HF_HUB_OFFLINE is set' if offline else env.endpoint()})"
    fix = "download it once with network access, or point HF_HOME at a cache that holds it"
    if offline:
        fix = "unset HF_HUB_OFFLINE and " + fix
    return f"{subject} is not in the local cache ({where}) and {reason}; {fix}"


def _files_under(folder: Path) -> list[str]:
    found: list[str] = []
    for dirpath, _, filenames in os.walk(folder):
        found.extend(Path(dirpath, name).relative_to(folder).as_posix() for name in filenames)
    return sorted(found)


__all__ = ["HFHubClient"]
