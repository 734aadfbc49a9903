"""Hugging Face environment variables, read at call time.

``huggingface_hub`` and ``datasets`` read HF_HOME, HF_HUB_OFFLINE and HF_ENDPOINT once, when
first imported. kitchen reads them on every call and passes them on explicitly, so that a
process (or a test) that changes them later is still obeyed.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

_TRUE = {"1", "on", "yes", "true"}


def hf_home() -> Path:
    if home := os.environ.get("HF_HOME"):
        return Path(home).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or "~/.cache"
    return Path(cache).expanduser() / "huggingface"


def hub_cache() -> Path:
    if cache := os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE"):
        return Path(cache).expanduser()
    return hf_home() / "hub"


def datasets_cache() -> Path:
    if cache := os.environ.get("HF_DATASETS_CACHE"):
        return Path(cache).expanduser()
    return hf_home() / "datasets"


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE


def datasets_offline() -> bool:
    return hub_offline() or os.environ.get("HF_DATASETS_OFFLINE", "").strip().lower() in _TRUE


def endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "").rstrip("/") or "https://huggingface.co"


def secrets(token: str | None) -> list[str]:
    """Every token that may be in use, so that messages can be scrubbed of all of them."""
    found = [token, os.environ.get("HF_TOKEN"), os.environ.get("HUGGING_FACE_HUB_TOKEN")]
    return [t for t in found if t]


def scrub(text: str, tokens: list[str]) -> str:
    for token in tokens:
        text = text.replace(token, "***")
    return text


def is_unreachable(exc: BaseException) -> bool:
    """True for connection failures, offline mode and hub outages (HTTP 5xx)."""
    from huggingface_hub.errors import HfHubHTTPError

    if isinstance(exc, HfHubHTTPError) and exc.response is not None:
        return exc.response.status_code >= 500
    return isinstance(exc, _unreachable_errors())


def _unreachable_errors() -> tuple[type[BaseException], ...]:
    """Exception types that mean "the hub cannot be reached", for the HTTP library in use.

    Only modules already imported are looked at: huggingface_hub has imported its own.
    """
    found: list[type[BaseException]] = [ConnectionError, TimeoutError]
    for module, name in (
        ("httpx2", "TransportError"),
        ("httpx", "TransportError"),
        ("requests", "ConnectionError"),
        ("requests", "Timeout"),
    ):
        cls = getattr(sys.modules.get(module), name, None)
        if isinstance(cls, type) and issubclass(cls, BaseException):
            found.append(cls)
    from huggingface_hub.errors import OfflineModeIsEnabled

    found.append(OfflineModeIsEnabled)
    return tuple(found)
