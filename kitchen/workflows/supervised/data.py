"""The supervised workflow's rows: chat ``messages``, checked before a run exists."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kitchen.workflows.common.data import check_chat


def check_chat_row(source: str, index: int, row: Mapping[str, Any]) -> None:
    check_chat(source, index, row, "messages")
