"""Identifiers and paths: sessions, models, requests, checkpoints, and the owner's folder.

Everything a client names that reaches the file system goes through :func:`checked_name` and
:func:`owner_path`, so a checkpoint name or a ``tinker://`` path can never point outside the
folder of the key that owns it. The SDK computes a resumed model's id itself, as
``{session_id}:train:{model_seq_id}``, so that shape is fixed here.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from kitchen.serve.errors import bad_request

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
SESSION = re.compile(r"sess-[0-9a-f]{16}")
KINDS = {"weights": "training", "sampler_weights": "sampler", "external_weights": "external"}
"""tinker path segment -> the SDK's checkpoint_type."""


def new_session_id() -> str:
    return f"sess-{secrets.token_hex(8)}"


def model_id(session_id: str, model_seq_id: int) -> str:
    return f"{session_id}:train:{model_seq_id}"


def run_id_of(model: str) -> str:
    """The kitchen run id of a served model (run ids allow no ':')."""
    session, _, seq = model.partition(":train:")
    return f"{session}-train-{seq}"


def parse_model_id(value: str) -> tuple[str, int] | None:
    session, sep, seq = value.partition(":train:")
    if not sep or not SESSION.fullmatch(session) or not seq.isdigit() or len(seq) > 9:
        return None
    return session, int(seq)


def request_id(model: str, seq_id: int) -> str:
    """Deterministic, so a request retried after a restart maps to the same future."""
    return f"{model}:req:{seq_id}"


def sampler_id(session_id: str, sampling_seq_id: int) -> str:
    return f"{session_id}:sample:{sampling_seq_id}"


def checked_name(name: str, what: str = "checkpoint name") -> str:
    """One path component, no separators, no '..': the only shape a client may name."""
    if not isinstance(name, str) or not NAME.fullmatch(name) or ".." in name:
        raise bad_request(
            f"invalid {what} {name[:80]!r}: use 1-100 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit, without '..'"
        )
    return name


@dataclass(frozen=True, slots=True)
class TinkerPath:
    model_id: str
    kind: str  # weights | sampler_weights | external_weights
    name: str

    def __str__(self) -> str:
        return f"tinker://{self.model_id}/{self.kind}/{self.name}"


def parse_tinker_path(value: str) -> TinkerPath:
    if not isinstance(value, str) or not value.startswith("tinker://"):
        raise bad_request("a checkpoint path must look like tinker://<model_id>/<kind>/<name>")
    parts = value[len("tinker://") :].split("/")
    if len(parts) != 3 or parts[1] not in KINDS or parse_model_id(parts[0]) is None:
        raise bad_request(
            f"invalid tinker path {value[:120]!r}: expected tinker://<model_id>/"
            "weights|sampler_weights|external_weights/<name>"
        )
    return TinkerPath(parts[0], parts[1], checked_name(parts[2]))


def owner_path(owner_dir: Path, *parts: str) -> Path:
    """``owner_dir/parts…``, refused if it resolves anywhere else (symlinks included)."""
    root = owner_dir.resolve()
    target = root.joinpath(*parts).resolve()
    if not target.is_relative_to(root):
        raise bad_request("that path leaves its owner's folder")
    return target
