"""``kitchen serve``: the Tinker-compatible server; ``kitchen serve keys``: its API keys.

fastapi and uvicorn (the ``serve`` extra) are imported only when the server starts, so the
rest of the CLI never pays for them.

This is where the server is composed: :func:`open_ports` picks the training backend
(through ``kitchen.engine.registry``) and opens the event log, and the app is built on them;
``kitchen.serve`` itself imports neither an adapter nor the store.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from pathlib import Path

    from kitchen.ports import ServingClient
    from kitchen.serve.server import Ports
    from kitchen.serve.settings import ServeSettings

BACKEND = "local_torch"
"""The training backend served models train on (a name in ``kitchen.engine.registry``)."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="serve the Tinker API on the local backend (every request is an event)",
        description="Serve the Tinker training API on the local torch backend, so the official "
        "tinker SDK trains here (TINKER_BASE_URL=http://HOST:PORT, TINKER_API_KEY=a key from "
        "`kitchen serve keys create`). Each served model is a run: a restart rebuilds it.",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument(
        "--checkpoint-every",
        type=int,
        default=10,
        metavar="N",
        help="server-side checkpoint every N optimizer steps: a restart re-applies at most N "
        "(default 10)",
    )
    p.add_argument(
        "--base-model",
        action="append",
        metavar="NAME",
        help="a base model clients may train (repeatable; default kitchen/tiny)",
    )
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument(
        "--max-tokens-per-microbatch",
        type=_budget,
        default=16384,
        metavar="N",
        help="padded tokens per forward/backward micro-batch of models created from now on "
        "(none: one batch a call; default 16384); each model keeps the value it was created "
        "with across restarts",
    )
    p.add_argument(
        "--loggers",
        type=_loggers,
        default=(),
        metavar="NAMES",
        help="trackers the step metrics of models created from now on go to, from their log: "
        "mlflow, tensorboard, wandb, comma-separated (configured as for a run: "
        "MLFLOW_TRACKING_URI, WANDB_PROJECT, ...; docs/trackers.md); each model keeps the "
        "ones it was created with across restarts (default: none)",
    )
    p.add_argument(
        "--max-resident-models",
        type=int,
        default=None,
        metavar="N",
        help="at most N served models hold their weights and optimizer state in memory; the "
        "one idle longest is checkpointed and unloaded, and reloaded on its next request "
        "(default: no bound). Models on one base model share its weights either way",
    )
    p.add_argument(
        "--max-queued-per-key",
        type=int,
        default=256,
        metavar="N",
        help="requests of one API key accepted and not yet run; more get 429 with "
        "Retry-After, which the SDK waits out (default 256)",
    )
    p.add_argument("--max-body-mb", type=int, default=64, help="largest request body (default 64)")
    p.add_argument(
        "--models-in-process",
        action="store_true",
        help="run the models in the server's own process instead of a child process of their "
        "own (one process to debug; small steps are slower, as torch then shares the "
        "interpreter lock with the server's Python)",
    )
    p.set_defaults(func=_serve)
    keys = p.add_subparsers(dest="serve_command", metavar="keys")
    k = keys.add_parser("keys", help="create, list or revoke API keys")
    kk = k.add_subparsers(dest="keys_command", metavar="ACTION")
    c = kk.add_parser("create", help="make a key (printed once; only its hash is stored)")
    c.add_argument("--name", default="", help="a label for the key")
    c.set_defaults(func=_keys_create)
    kk.add_parser("list", help="list keys: id, name, created, revoked").set_defaults(
        func=_keys_list
    )
    r = kk.add_parser("revoke", help="revoke a key by id (takes effect at once)")
    r.add_argument("key_id", metavar="KEY_ID")
    r.set_defaults(func=_keys_revoke)
    k.set_defaults(func=lambda args: k.print_help(sys.stderr) or 2)


def _budget(text: str) -> int | None:
    if text.strip().lower() in ("none", "null"):
        return None
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of tokens nor none")
    return value


def _loggers(text: str) -> tuple[str, ...]:
    from kitchen.engine.trackers import LOGGERS

    names = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    unknown = [n for n in names if n not in LOGGERS]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown logger {unknown[0]!r}; known: {', '.join(LOGGERS)}"
        )
    return names


def _serve_dir() -> object:
    from kitchen.cli._common import kitchen_home

    return kitchen_home() / "serve"


def _serve(args: argparse.Namespace) -> int:
    import logging

    from kitchen.cli._common import kitchen_home
    from kitchen.errors import ConfigError

    try:
        import uvicorn

        from kitchen.serve.app import create_app
    except ImportError as exc:
        raise ConfigError(
            f"kitchen serve needs the serve extra ({exc.name} is missing): "
            "pip install 'kitchen-posttrain[serve]'"
        ) from None
    from kitchen.serve.settings import DEFAULT_BASE_MODELS, ServeSettings
    from kitchen.settings import db_url

    if args.loggers:
        from kitchen.engine.trackers import check_installed

        check_installed(args.loggers)
    if args.checkpoint_every < 1:
        raise ConfigError("--checkpoint-every must be at least 1")
    if args.max_resident_models is not None and args.max_resident_models < 1:
        raise ConfigError(
            f"--max-resident-models must be at least 1, got {args.max_resident_models}"
        )
    if args.max_queued_per_key < 1:
        raise ConfigError(f"--max-queued-per-key must be at least 1, got {args.max_queued_per_key}")
    if not 0 < args.port < 65536:
        raise ConfigError(f"--port must be 1-65535, got {args.port}")
    settings = ServeSettings(
        home=kitchen_home(),
        db_url=db_url(),
        checkpoint_every=args.checkpoint_every,
        base_models=tuple(args.base_model or DEFAULT_BASE_MODELS),
        max_body_bytes=args.max_body_mb * 1024 * 1024,
        device=args.device,
        max_tokens_per_microbatch=args.max_tokens_per_microbatch,
        loggers=args.loggers,
        max_resident_models=args.max_resident_models,
        max_queued_per_key=args.max_queued_per_key,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("kitchen serve: %(message)s"))
    served = logging.getLogger("kitchen.serve")
    served.addHandler(handler)
    served.setLevel(logging.INFO)
    with open_ports(settings, models_in_process=args.models_in_process) as ports:
        print(f"http://{args.host}:{args.port}", flush=True)
        uvicorn.run(
            create_app(settings, ports),
            host=args.host,
            port=args.port,
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=5,
        )
    return 0


@contextmanager
def open_ports(settings: ServeSettings, *, models_in_process: bool = False) -> Iterator[Ports]:
    """The backend and the event log an app is built on, closed when the block ends (after
    the app has stopped): the backend is ``BACKEND``'s factory from the registry, on the
    settings' device, built in a process of its own (``kitchen.serve.model_process``) unless
    ``models_in_process``; the log is the store at ``settings.db_url``, or kitchen.db in the
    home folder, with the test fault points as its hook."""
    from functools import partial

    from kitchen.engine import faults
    from kitchen.engine.launch import versions
    from kitchen.serve.server import Ports
    from kitchen.store import open_store

    with ExitStack() as opened:
        build = partial(serving_backend, settings.device, settings.home)
        if models_in_process:
            backend = build()
        else:
            from kitchen.serve.model_process import ModelProcess

            backend = ModelProcess(build, on_death=_models_died)
        opened.callback(backend.close)
        settings.serve_dir.mkdir(parents=True, exist_ok=True)
        store = open_store(
            settings.db_url or f"sqlite:///{settings.home / 'kitchen.db'}", hook=faults.point
        )
        opened.callback(store.close)
        yield Ports(backend=backend, log=store, versions=versions())


def serving_backend(device: str, home: Path) -> ServingClient:
    """``BACKEND``'s factory from the registry on ``device``, checked to be a ServingClient."""
    from types import SimpleNamespace

    from kitchen.engine import registry
    from kitchen.errors import ConfigError
    from kitchen.ports import ServingClient

    backend = registry.lookup("training", BACKEND)(SimpleNamespace(device=device), home)
    if not isinstance(backend, ServingClient):
        backend.close()
        raise ConfigError(
            f"the training backend {BACKEND!r} cannot serve the Tinker API "
            "(it is not a kitchen.ports.ServingClient)"
        )
    return backend


def _models_died(reason: str) -> None:
    """The model process is gone under a running server: stop at once, as a kill would, so
    that whatever supervises the server restarts it (a restart loses nothing acknowledged)."""
    import os

    print(
        f"kitchen serve: {reason}; stopping (a restart rebuilds every model from the log)",
        file=sys.stderr,
        flush=True,
    )
    os._exit(1)


def _keys_create(args: argparse.Namespace) -> int:
    from pathlib import Path

    from kitchen.serve import keys

    key, record = keys.create(Path(str(_serve_dir())), args.name)
    print(key)
    print(
        f"created {record.id}{f' ({record.name})' if record.name else ''}: the key above is "
        "shown once; set it as TINKER_API_KEY",
        file=sys.stderr,
    )
    return 0


def _keys_list(args: argparse.Namespace) -> int:
    from pathlib import Path

    from kitchen.cli._common import table
    from kitchen.serve import keys

    rows = [
        [r.id, r.name or "-", r.created_at, r.revoked_at or "-"]
        for r in keys.read(Path(str(_serve_dir())))
    ]
    print(table(["ID", "NAME", "CREATED", "REVOKED"], rows))
    return 0


def _keys_revoke(args: argparse.Namespace) -> int:
    from pathlib import Path

    from kitchen.serve import keys

    record = keys.revoke(Path(str(_serve_dir())), args.key_id)
    print(f"revoked {record.id} at {record.revoked_at}")
    return 0
