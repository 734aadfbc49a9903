"""The server's state: the journal, keys, models, samplers and futures.

One :class:`Server` per app, created at start-up from the settings and the :class:`Ports`
its caller opened (the backend, the log): it rebuilds every served model found in the log (in
the background, so the server answers at once; a request to a model still being rebuilt
waits for it) and owns every lookup that checks ownership. Anything owned by another key is
reported exactly like something that does not exist.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kitchen.errors import ConcurrencyConflict, KitchenError
from kitchen.paths import state_folder
from kitchen.ports import ServingClient
from kitchen.serve import ids
from kitchen.serve import journal as jr
from kitchen.serve.errors import ApiError, bad_request, not_found
from kitchen.serve.futures import FutureTable
from kitchen.serve.keys import KeyRing
from kitchen.serve.model import Op, ServedModel, as_json, load_checkpoint_results
from kitchen.serve.sampling import SamplerPool
from kitchen.serve.settings import ServeSettings

log = logging.getLogger("kitchen.serve")
BUILD_WAIT_S = 600.0


@dataclass(frozen=True, slots=True)
class Ports:
    """What the server is built on, chosen and opened by its caller (``kitchen serve``), who
    also closes them once the app has stopped."""

    backend: ServingClient
    """Trains the served models and samples."""
    log: jr.ServedLog
    """The event log every served model is a run of."""
    versions: Mapping[str, str]
    """The software that serves, recorded in each new model's RunCreated."""


class Server:
    def __init__(self, settings: ServeSettings, ports: Ports) -> None:
        self.settings = settings
        settings.serve_dir.mkdir(parents=True, exist_ok=True)
        self.backend = ports.backend
        self.journal = jr.Journal(ports.log, settings.home)
        self.keys = KeyRing(settings.serve_dir)
        self.futures = FutureTable()
        self.samplers = SamplerPool(self.futures, ports.backend)
        self.models: dict[str, ServedModel] = {}
        self.versions = dict(ports.versions)
        self.secret = _file_secret(settings.serve_dir / "url-secret")
        self._vocab: dict[str, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Register every served model and rebuild it in the background."""
        run_ids = await asyncio.to_thread(self.journal.served_runs)
        for run_id in run_ids:
            try:
                plan = await asyncio.to_thread(self.journal.plan, run_id)
                await self._rebuild(plan)
            except KitchenError as exc:
                log.error("cannot rebuild %s: %s", run_id, exc)

    async def _rebuild(self, plan: jr.RebuildPlan) -> None:
        spec = plan.spec
        model = ServedModel(
            spec, self.journal, self.futures, self.settings.checkpoint_every, self.backend
        )
        model.next_seq_id = plan.next_seq_id
        model.attempt = plan.attempt
        model.plan = plan
        self.models[spec.model_id] = model
        created = self.futures.create(f"{spec.model_id}:create", spec.owner, spec.model_id)
        created.future.set_result(as_json(self._created_body(spec)))
        await asyncio.to_thread(self.journal.begin_attempt, plan)
        load: list[tuple[Path, bool]] = []
        restored = {}
        if plan.checkpoint is not None:
            folder = self.journal.blobs.local_path(plan.checkpoint.uri)
            load.append((state_folder(folder), True))
            restored = load_checkpoint_results(folder)
        elif spec.source is not None:
            load.append((self.settings.home / spec.source["uri"], bool(spec.source["optimizer"])))
        for req in plan.replay:
            body = await asyncio.to_thread(self.journal.read_input, req)
            payload = self.decode(req.kind, body, model)
            model.enqueue_replay(Op(req.kind, req.seq_id, req.request_id, req.seq, payload, True))
        model.enqueue_marker()
        log.info(
            "rebuilding %s from %s, replaying %d requests",
            spec.model_id,
            plan.checkpoint.name if plan.checkpoint else "the start",
            len(plan.replay),
        )
        self._spawn(model.start(load, restored))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        for model in list(self.models.values()):
            await model.close()
        await asyncio.to_thread(self.journal.close)

    # ------------------------------------------------------------------ ownership

    def session_owner(self, session_id: str) -> str | None:
        record = self.journal.load_session(session_id)
        return None if record is None else str(record.get("owner"))

    def check_session(self, owner: str, session_id: str) -> None:
        if self.session_owner(session_id) != owner:
            raise not_found(f"session {session_id[:80]!r}")

    async def model(self, owner: str, model_id: str) -> ServedModel:
        """The caller's model, built and ready; 404 for anyone else's or an unknown id."""
        model = self.models.get(model_id)
        if model is None or model.owner != owner:
            raise not_found(f"model {model_id[:80]!r}")
        try:
            await asyncio.wait_for(model.ready.wait(), BUILD_WAIT_S)
        except TimeoutError:
            raise ApiError(503, f"model {model_id} is still being built", "server") from None
        if model.broken:
            raise ApiError(500, model.broken, "server")
        return model

    def check_base_model(self, base_model: str) -> None:
        if base_model not in self.settings.base_models:
            raise bad_request(
                f"base model {base_model[:80]!r} is not served here; served: "
                f"{', '.join(self.settings.base_models)}"
            )

    def vocab(self, base_model: str) -> int:
        if base_model not in self._vocab:
            self._vocab[base_model] = self.backend.vocab_size(base_model)
        return self._vocab[base_model]

    def resolve(self, owner: str, path: str) -> tuple[ids.TinkerPath, ServedModel, Path]:
        """A tinker:// path of the caller's, and the folder it names (which must exist)."""
        tp = ids.parse_tinker_path(path)
        model = self.models.get(tp.model_id)
        if model is None or model.owner != owner:
            raise not_found(f"checkpoint {path[:120]!r}")
        folder = model.folder(tp.kind, tp.name)
        if not folder.is_dir():
            raise not_found(f"checkpoint {path[:120]!r}")
        return tp, model, folder

    # ------------------------------------------------------------------ models

    def _created_body(self, spec: jr.ModelSpec) -> dict[str, Any]:
        if spec.source is not None:
            return {"path": spec.source["path"], "model_id": spec.model_id, "type": "load_weights"}
        return {"model_id": spec.model_id, "type": "create_model"}

    async def create_model(self, spec: jr.ModelSpec) -> str:
        """Record the model (idempotent per session and model_seq_id) and build it."""
        rid = f"{spec.model_id}:create"
        existing = self.models.get(spec.model_id)
        if existing is not None:
            if existing.owner != spec.owner:
                raise not_found(f"session {spec.session_id!r}")
            return rid
        try:
            await asyncio.to_thread(self.journal.create_model, spec, self.versions)
        except ConcurrencyConflict:
            raise ApiError(409, f"model {spec.model_id} is being created", "user") from None
        model = ServedModel(
            spec, self.journal, self.futures, self.settings.checkpoint_every, self.backend
        )
        self.models[spec.model_id] = model
        entry = self.futures.create(rid, spec.owner, spec.model_id)
        load: list[tuple[Path, bool]] = []
        if spec.source is not None:
            load.append((self.settings.home / spec.source["uri"], bool(spec.source["optimizer"])))

        async def build() -> None:
            await model.start(load, {})
            if model.broken:
                entry.future.set_result(as_json({"error": model.broken, "category": "user"}))
            else:
                entry.future.set_result(as_json(self._created_body(spec)))

        self._spawn(build())
        return rid

    def new_seed(self) -> int:
        return secrets.randbelow(2**31)

    # ------------------------------------------------------------------ decoding

    def decode(self, kind: str, body: bytes, model: ServedModel) -> Any:
        """A logged request body back into what the executor runs (the same code as accept)."""
        import json

        from kitchen.serve import wire

        if kind in ("forward_backward", "forward"):
            return wire.decode_forward_backward(
                body,
                max_datums=self.settings.max_batch_datums,
                max_tokens=self.settings.max_batch_tokens,
            )
        payload: dict[str, Any] = json.loads(body)
        if kind == "load_weights":
            payload["folder"] = str(self.settings.home / payload["uri"])
        return payload


def _file_secret(path: Path) -> bytes:
    """A random secret kept beside keys.json, for signing download URLs."""
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_bytes(secrets.token_bytes(32))
        tmp.chmod(0o600)
        tmp.replace(path)
    return path.read_bytes()
