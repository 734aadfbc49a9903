"""docs/cli.md stays true to the parser: the audit commands and every flag they take."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from kitchen.cli import build_parser

DOC = (Path(__file__).resolve().parents[2] / "docs" / "cli.md").read_text()
AUDIT = (
    "runs", "show", "replay", "cancel", "plot", "diff", "report", "watch", "export", "verify",
)  # fmt: skip


def _commands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    raise AssertionError("kitchen has no sub-commands")


def _section(name: str) -> str:
    m = re.search(rf"^### `kitchen {name}\b.*?(?=^### |\Z)", DOC, re.M | re.S)
    assert m, f"docs/cli.md has no section for kitchen {name}"
    return m[0]


@pytest.mark.parametrize("name", AUDIT)
def test_every_flag_of_an_audit_command_is_documented(name: str) -> None:
    section = _section(name)
    flags = [
        opt
        for action in _commands()[name]._actions
        for opt in action.option_strings
        if opt not in ("-h", "--help")
    ]
    assert flags or name == "cancel"
    for flag in flags:
        assert f"`{flag}" in section, f"{flag} of kitchen {name} is not in docs/cli.md"


def test_every_documented_command_exists() -> None:
    documented = set(re.findall(r"^### `kitchen (\w+)", DOC, re.M))
    assert set(AUDIT) <= documented
    assert documented <= set(_commands())
