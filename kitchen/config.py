"""Recipe configuration: a file (YAML/TOML) plus ``key=value`` overrides, validated in one go.

Every problem is reported at once, in one line, before a run is created: unknown keys (with the
known ones listed), wrong types and out-of-range values (with the value given), a missing or
broken file (with the parser's line). Secrets are ``SecretStr`` fields, filled from the
environment when unset and written to the log only as ``**********``.
"""

from __future__ import annotations

import hashlib
import json
import os
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, Field, ValidationError

from kitchen.errors import ConfigError

SECRET_ENV = {"hf_token": "HF_TOKEN", "tinker_api_key": "TINKER_API_KEY"}
REDACTED = "**********"  # a secret as the log records it

# --------------------------------------------------------------------------- two kinds of keys
#
# A recipe config holds the run's *identity* (what the result depends on: model, data, LoRA,
# optimizer, schedule, seed, workflow settings) and its *operating settings* (how an attempt
# executes: device, threads, micro-batch size, ...). Only identity is hashed and compared at a
# resume; operating settings are recorded per attempt (``AttemptStarted.operating``) and may
# change from one attempt to the next. A key is identity unless declared with ``operating``.
#
# A key added after runs were already recorded declares ``absent``: the value that reproduces
# what a run recorded before the key existed did, which is what such a run gets back at a
# resume (never the key's current default).

_NO_VALUE: Any = object()


def operating(
    default: Any = _NO_VALUE,
    *,
    moves_floats: bool = False,
    absent: Any = _NO_VALUE,
    **field: Any,
) -> Any:
    """A ``Field`` for an operating setting. ``moves_floats``: changing it may change the last
    bits of a step's results (micro-batch size, threads, device), so a step re-executed after
    such a change is compared with the relative tolerance of docs/guarantees.md."""
    extra: dict[str, Any] = {"operating": True, "moves_floats": moves_floats}
    if absent is not _NO_VALUE:
        extra["absent"] = absent
    if default is not _NO_VALUE:
        field["default"] = default
    return Field(json_schema_extra=extra, **field)


def added(default: Any = _NO_VALUE, *, absent: Any, **field: Any) -> Any:
    """A ``Field`` for an identity key added after runs were recorded without it; ``absent``
    is the value that reproduces those runs."""
    if default is not _NO_VALUE:
        field["default"] = default
    return Field(json_schema_extra={"absent": absent}, **field)


def _extra(config_cls: type[BaseModel], name: str) -> dict[str, Any]:
    extra = config_cls.model_fields[name].json_schema_extra
    return extra if isinstance(extra, dict) else {}


def operating_keys(config_cls: type[BaseModel]) -> frozenset[str]:
    """The config's operating settings (secrets count as operating: they say who runs it)."""
    return frozenset(
        name
        for name in config_cls.model_fields
        if _extra(config_cls, name).get("operating") or name in SECRET_ENV
    )


def float_moving_keys(config_cls: type[BaseModel]) -> frozenset[str]:
    return frozenset(
        name for name in config_cls.model_fields if _extra(config_cls, name).get("moves_floats")
    )


def absent_values(config_cls: type[BaseModel]) -> dict[str, Any]:
    """``{key: value for runs recorded before the key existed}``, for keys that declare one."""
    out: dict[str, Any] = {}
    for name in config_cls.model_fields:
        extra = _extra(config_cls, name)
        if "absent" in extra:
            out[name] = extra["absent"]
    return out


def read_file(path: str | Path) -> dict[str, Any]:
    p = Path(path).expanduser()
    if not p.is_file():
        raise ConfigError(f"config file {str(p)!r} not found; pass an existing .yaml or .toml file")
    text = p.read_text(encoding="utf-8")
    try:
        if p.suffix in (".yaml", ".yml"):
            data = yaml.safe_load(text)
        elif p.suffix == ".toml":
            data = tomllib.loads(text)
        else:
            raise ConfigError(f"config file {str(p)!r}: use a .yaml, .yml or .toml file")
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(
            f"config file {str(p)!r} is not valid YAML{where}: {getattr(exc, 'problem', exc)}"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {str(p)!r} is not valid TOML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {str(p)!r} must hold a mapping of key: value")
    return data


def parse_overrides(items: Sequence[str] | Mapping[str, Any]) -> dict[str, Any]:
    """``key=value`` texts as ``{key: value}`` (values read as YAML); a mapping (the Python
    API's keywords, dotted keys included) is taken as it is."""
    if isinstance(items, Mapping):
        return dict(items)
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {item!r} is not key=value (e.g. learning_rate=1e-3)")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        out[key.strip()] = raw if isinstance(value, dict | list) else value
    return out


def build(
    config_cls: type[BaseModel], file_data: Mapping[str, Any], overrides: Mapping[str, Any]
) -> BaseModel:
    """Validate file data updated by overrides; all problems in one ConfigError.

    A dotted key ``name.sub=value`` sets one entry of a mapping key (``adapters.training=x``).
    """
    known = set(config_cls.model_fields)
    merged = _nest({**file_data, **overrides}, known)
    problems = [f"unknown key {k!r}" for k in merged if k not in known]
    for field, env in SECRET_ENV.items():
        if field in known and merged.get(field) is None and os.environ.get(env):
            merged[field] = os.environ[env]
    try:
        cfg = config_cls.model_validate({k: v for k, v in merged.items() if k in known})
    except ValidationError as exc:
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"])
            given = err.get("input")
            shown = "***" if where in SECRET_ENV else repr(given)
            problems.append(f"{where}: {err['msg']} (got {shown})")
        cfg = None
    if problems:
        hint = (
            f"known keys: {', '.join(sorted(known))}"
            if any("unknown key" in p for p in problems)
            else ""
        )
        raise ConfigError("invalid config: " + "; ".join(problems) + (f" — {hint}" if hint else ""))
    assert cfg is not None
    return cfg


def _nest(data: dict[str, Any], known: set[str]) -> dict[str, Any]:
    """Fold each ``a.b`` key into the mapping key ``a`` (when ``a`` is a key of the config)."""
    for key in [k for k in data if "." in k and k.partition(".")[0] in known]:
        head, _, tail = key.partition(".")
        base = data.get(head)
        data[head] = {**(base if isinstance(base, dict) else {}), tail: data.pop(key)}
    return data


def redacted(cfg: BaseModel) -> dict[str, Any]:
    """The config as recorded in RunCreated: JSON values, secrets as ``**********``."""
    data = cfg.model_dump(mode="json")
    for name, field in type(cfg).model_fields.items():
        if field.annotation is not None and "SecretStr" in str(field.annotation):
            data[name] = None if getattr(cfg, name) is None else REDACTED
    return data


def config_hash(data: Mapping[str, Any]) -> str:
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


BLOBS = "blobs"  # the adapters entry naming the blob store: recorded apart (RunCreated.blob_store)


def identity(config_cls: type[BaseModel], record: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a recorded config that the run's result depends on: every key but the
    operating settings, and the adapters manifest without its blob store (where blobs live is
    recorded and checked on its own)."""
    skip = operating_keys(config_cls)
    out = {k: v for k, v in record.items() if k not in skip}
    if isinstance(out.get("adapters"), Mapping):
        out["adapters"] = {k: v for k, v in out["adapters"].items() if k != BLOBS}
    return out


def operating_of(config_cls: type[BaseModel], record: Mapping[str, Any]) -> dict[str, Any]:
    """The operating settings of a recorded config (secrets stay redacted)."""
    keys = operating_keys(config_cls)
    return {k: v for k, v in record.items() if k in keys}


def identity_hash(config_cls: type[BaseModel], record: Mapping[str, Any]) -> str:
    """``config_hash`` of a run: the hash of its identity only."""
    return config_hash(identity(config_cls, record))


def changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    """``key old -> new`` for each key whose value differs, in key order (JSON values)."""
    out = []
    for key in sorted(set(before) | set(after)):
        old, new = before.get(key), after.get(key)
        if old != new:
            out.append(f"{key} {json.dumps(old)} -> {json.dumps(new)}")
    return out


def restore(
    config_cls: type[BaseModel],
    recorded: Mapping[str, Any],
    overrides: Mapping[str, Any],
    renamed: Mapping[str, str] | None = None,
    operating_settings: Mapping[str, Any] | None = None,
) -> BaseModel:
    """Rebuild a run's config from its record, for its next attempt.

    - Secrets come back from the environment (the log holds them redacted).
    - Keys an older version recorded under another name (``renamed``: old → new, dotted for a
      mapping entry) move to their new name.
    - A key added after the run was recorded takes its ``absent`` value — what the run did
      before the key existed — never its current default; so changing a default never
      changes a run already recorded.
    - Operating settings are the last attempt's (``operating_settings``, as recorded in its
      ``AttemptStarted``) where it recorded them; a run recorded before attempts recorded them
      keeps those of its ``RunCreated`` config.
    - ``overrides`` last: identity changes among them are what a resume refuses without
      ``--force``; operating ones are simply this attempt's settings.
    """
    data = {k: v for k, v in recorded.items() if not (isinstance(v, str) and v == REDACTED)}
    for old, new in (renamed or {}).items():
        if old in data and old not in config_cls.model_fields:
            data[new] = data.pop(old)
    for key, value in absent_values(config_cls).items():
        if key not in data and not any(k.startswith(f"{key}.") for k in data):
            data[key] = value
    keys = operating_keys(config_cls)
    for key, value in (operating_settings or {}).items():
        if key in keys and not (isinstance(value, str) and value == REDACTED):
            data[key] = value
    return build(config_cls, data, overrides)
