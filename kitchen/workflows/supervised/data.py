"""The supervised workflow's rows: chat ``messages``, checked before a run exists."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kitchen.errors import ConfigError


def check_chat_row(source: str, index: int, row: Mapping[str, Any]) -> None:
    messages = row.get("messages")
    ok = isinstance(messages, list) and bool(messages)
    for m in messages if isinstance(messages, list) else ():
        if not (
            isinstance(m, dict)
            and isinstance(m.get("role"), str)
            and isinstance(m.get("content"), str)
        ):
            ok = False
            break
    if not ok:
        raise ConfigError(
            f"{source}: row {index}: 'messages' must be a non-empty list of "
            "{'role': str, 'content': str}; fix or drop that row"
        )
