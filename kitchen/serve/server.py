"""The server's state: the journal, keys, models, samplers and futures.

One :class:`Server` per app, created at start-up from the settings and the :class:`Ports`
its caller opened (the backend, the log). Start-up reads nothing per model: a served model on
record is taken up the first time a request names it (its log folded into a rebuild plan,
a new attempt recorded, the requests after its checkpoint queued), and its weights are loaded
when its first request runs, within ``--max-resident-models`` (:mod:`kitchen.serve.scheduling`).
The server owns every lookup that checks ownership. Anything owned by another key is reported
exactly like something that does not exist.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kitchen.errors import ConcurrencyConflict
from kitchen.paths import state_folder
from kitchen.ports import ServingClient
from kitchen.serve import ids
from kitchen.serve import journal as jr
from kitchen.serve.errors import ApiError, bad_request, not_found
from kitchen.serve.futures import FutureTable
from kitchen.serve.keys import KeyRing
from kitchen.serve.model import (
    Op,
    ServedModel,
    as_json,
    load_checkpoint_results,
    saved_step,
)
from kitchen.serve.sampling import SamplerPool
from kitchen.serve.scheduling import FairGate, Residency
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
        self.gate = FairGate(settings.concurrent_work)
        self.residency = Residency(settings.max_resident_models)
        self.samplers = SamplerPool(self.futures, ports.backend, self.gate)
        self.models: dict[str, ServedModel] = {}  # taken up by this process
        self.versions = dict(ports.versions)
        self.secret = _file_secret(settings.serve_dir / "url-secret")
        self._vocab: dict[str, int] = {}
        self._files: dict[str, str] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._specs: dict[str, jr.ModelSpec | None] = {}
        self._taking_up: dict[str, asyncio.Future[ServedModel | None]] = {}

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Nothing to do per model: each is taken up when a request names it."""
        log.info(
            "serving; at most %s models resident",
            self.settings.max_resident_models or "all",
        )

    async def spec_of(self, model_id: str) -> jr.ModelSpec | None:
        """A served model's spec (its RunCreated alone is read), or None if there is none."""
        if model_id in self.models:
            return self.models[model_id].spec
        if model_id not in self._specs:
            if ids.parse_model_id(model_id) is None:
                return None
            spec = await asyncio.to_thread(self.journal.spec_of, ids.run_id_of(model_id))
            if spec is None or spec.model_id != model_id:
                return None
            self._specs[model_id] = spec
        return self._specs[model_id]

    async def take_up(self, model_id: str) -> ServedModel | None:
        """The model as this process serves it, taken up from its log on first use (once,
        however many requests ask at the same moment); None if there is no such model."""
        found = self.models.get(model_id)
        if found is not None:
            return found
        pending = self._taking_up.get(model_id)
        if pending is not None:
            return await asyncio.shield(pending)
        fut: asyncio.Future[ServedModel | None] = asyncio.get_running_loop().create_future()
        self._taking_up[model_id] = fut
        try:
            model = None
            if await self.spec_of(model_id) is not None:
                plan = await asyncio.to_thread(self.journal.plan, ids.run_id_of(model_id))
                model = await self._rebuild(plan)
            fut.set_result(model)
            return model
        except BaseException as exc:
            fut.set_exception(exc)
            fut.exception()  # retrieved: a failure is reported to the caller, not logged twice
            raise
        finally:
            del self._taking_up[model_id]

    def _new_model(self, spec: jr.ModelSpec) -> ServedModel:
        return ServedModel(
            spec,
            self.journal,
            self.futures,
            self.settings.checkpoint_every,
            self.backend,
            self.gate,
            self.residency,
        )

    async def _rebuild(self, plan: jr.RebuildPlan) -> ServedModel:
        spec = plan.spec
        model = self._new_model(spec)
        model.next_seq_id = plan.next_seq_id
        model.attempt = plan.attempt
        model.plan = plan
        await asyncio.to_thread(self.journal.begin_attempt, plan)
        load: list[tuple[Path, bool]] = []
        restored = {}
        steps = 0
        if plan.checkpoint is not None:
            folder = self.journal.blobs.local_path(plan.checkpoint.uri)
            load.append((state_folder(folder), True))
            restored = load_checkpoint_results(folder)
            steps = plan.checkpoint.step
            model._clean_seq = plan.checkpoint.request_seq
        elif spec.source is not None:
            source = self.settings.home / spec.source["uri"]
            load.append((source, bool(spec.source["optimizer"])))
            steps = saved_step(source, 0)
        for req in plan.replay:
            body = await asyncio.to_thread(self.journal.read_input, req)
            payload = self.decode(req.kind, body, model)
            model.enqueue_replay(Op(req.kind, req.seq_id, req.request_id, req.seq, payload, True))
            if req.kind == "optim_step":
                steps += 1
            elif req.kind == "load_weights":
                steps = saved_step(Path(payload["folder"]), steps)
        model.steps = steps
        model.enqueue_marker()
        self.models[spec.model_id] = model
        created = self.futures.create(f"{spec.model_id}:create", spec.owner, spec.model_id)
        created.future.set_result(as_json(self._created_body(spec)))
        log.info(
            "taking up %s from %s, replaying %d requests",
            spec.model_id,
            plan.checkpoint.name if plan.checkpoint else "the start",
            len(plan.replay),
        )
        await model.start(load, restored)
        return model

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
        """The caller's model, taken up and ready; 404 for anyone else's or an unknown id."""
        spec = await self.spec_of(model_id)
        if spec is None or spec.owner != owner:
            raise not_found(f"model {model_id[:80]!r}")
        model = await self.take_up(model_id)
        if model is None:
            raise not_found(f"model {model_id[:80]!r}")
        try:
            await asyncio.wait_for(model.ready.wait(), BUILD_WAIT_S)
        except TimeoutError:
            raise ApiError(503, f"model {model_id} is still being built", "server") from None
        if model.broken:
            raise ApiError(500, model.broken, "server")
        return model

    def queued(self, owner: str) -> int:
        """Requests of a key accepted and not yet run (training and samples)."""
        training = sum(m.pending for m in self.models.values() if m.owner == owner)
        return training + self.samplers.pending.get(owner, 0)

    def check_queue(self, owner: str) -> None:
        """Refuse (429, Retry-After) a key's request while it has its fill of queued work:
        the SDK waits and sends it again; nothing is recorded."""
        limit = self.settings.max_queued_per_key
        if self.queued(owner) >= limit:
            raise ApiError(
                429,
                f"this key has {limit} requests queued: wait for some to finish",
                "user",
                retry_after=1,
            )

    def queue_state(self, request_id: str) -> tuple[str, str | None]:
        """What ``retrieve_future`` tells a client still waiting (tinker's queue_state): paused
        for capacity while its model waits for a resident place or for its turn behind
        other models' work, else active."""
        model_id = request_id.rpartition(":req:")[0]
        model = self.models.get(model_id)
        reason = model.waiting_for if model is not None else None
        if reason is None and request_id.startswith("sample:") and self.gate.queued:
            reason = "waiting for its turn"
        if reason is None:
            return "active", None
        return "paused_capacity", f"kitchen serve is busy: {reason}"

    def check_base_model(self, base_model: str) -> None:
        if base_model not in self.settings.base_models:
            raise bad_request(
                f"base model {base_model[:80]!r} is not served here; served: "
                f"{', '.join(self.settings.base_models)}"
            )

    async def vocab(self, base_model: str) -> int:
        """The base model's vocabulary size, asked of the backend once, off the event loop
        (the backend may still be starting)."""
        if base_model not in self._vocab:
            size = await asyncio.to_thread(self.backend.vocab_size, base_model)
            self._vocab[base_model] = size
        return self._vocab[base_model]

    async def model_files(self, base_model: str) -> str:
        """Where the base model's files are (what a client loads its tokenizer from), asked
        of the backend once, off the event loop."""
        if base_model not in self._files:
            found = await asyncio.to_thread(self.backend.resolve_model, base_model)
            self._files[base_model] = found
        return self._files[base_model]

    async def resolve(self, owner: str, path: str) -> tuple[ids.TinkerPath, jr.ModelSpec, Path]:
        """A tinker:// path of the caller's, its model's spec, and the folder it names (which
        must exist). The model is not taken up: its files are enough."""
        tp = ids.parse_tinker_path(path)
        spec = await self.spec_of(tp.model_id)
        if spec is None or spec.owner != owner:
            raise not_found(f"checkpoint {path[:120]!r}")
        folder = ids.owner_path(
            self.journal.owner_dir(spec.owner), "runs", spec.run_id, tp.kind, tp.name
        )
        if not folder.is_dir():
            raise not_found(f"checkpoint {path[:120]!r}")
        return tp, spec, folder

    # ------------------------------------------------------------------ models

    def _created_body(self, spec: jr.ModelSpec) -> dict[str, Any]:
        if spec.source is not None:
            return {"path": spec.source["path"], "model_id": spec.model_id, "type": "load_weights"}
        return {"model_id": spec.model_id, "type": "create_model"}

    async def create_model(self, spec: jr.ModelSpec) -> str:
        """Record the model (idempotent per session and model_seq_id) and build it."""
        rid = f"{spec.model_id}:create"
        existing = await self.spec_of(spec.model_id)
        if existing is not None:
            if existing.owner != spec.owner:
                raise not_found(f"session {spec.session_id!r}")
            await self.take_up(spec.model_id)
            return rid
        try:
            await asyncio.to_thread(self.journal.create_model, spec, self.versions)
        except ConcurrencyConflict:
            raise ApiError(409, f"model {spec.model_id} is being created", "user") from None
        model = self._new_model(spec)
        self.models[spec.model_id] = model
        entry = self.futures.create(rid, spec.owner, spec.model_id)
        load: list[tuple[Path, bool]] = []
        if spec.source is not None:
            source = self.settings.home / spec.source["uri"]
            load.append((source, bool(spec.source["optimizer"])))
            model.steps = saved_step(source, 0)

        async def build() -> None:
            await model.start(load, {})
            await model.warm()
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
