"""One served model: requests accepted in ``seq_id`` order, on record, then run one by one.

Accepting a request (:meth:`ServedModel.accept`) stores its body as a blob and appends its
event *before* the client gets the request id back; only then is it queued for the executor.
The executor runs the queue in order on the backend's client, resolves each future, and after
every N-th optimizer step takes a server-side checkpoint (state + the results not yet
retrieved) and records it. A rebuilt model queues the logged requests after its checkpoint
first, with their original request ids, so a client still polling them gets its answer.

The backend's client is loaded when the first request runs, not before, and may be unloaded
when the server needs the room (:meth:`ServedModel.unload`): the model is checkpointed at its
last request that left no gradient pending (``CheckpointSaved`` whose cursor names that
request, as a restart would read it) and reloaded later from that checkpoint, with the
``forward_backward`` requests after it run again, so it continues bit-exactly.
"""

from __future__ import annotations

import asyncio
import json
import logging
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kitchen.engine import faults
from kitchen.errors import InfrastructureError, KitchenError
from kitchen.log_records import StoredEvent
from kitchen.paths import checkpoint_key, checkpoint_name, state_folder
from kitchen.ports import BlobRef, ServedTrainingClient, ServingClient
from kitchen.serve import ids
from kitchen.serve.backend import wait
from kitchen.serve.errors import ApiError, bad_request
from kitchen.serve.futures import FutureTable, Result
from kitchen.serve.journal import Journal, ModelSpec, RebuildPlan
from kitchen.serve.scheduling import FairGate, Residency
from kitchen.types import AdamParams

log = logging.getLogger("kitchen.serve")
PROTO = "application/x-protobuf"
ORDER_WAIT_S = 5.0
MAX_AHEAD = 64


@dataclass(frozen=True, slots=True)
class Op:
    kind: str
    seq_id: int
    request_id: str
    event_seq: int
    payload: Any
    replay: bool = False


def as_json(value: dict[str, Any]) -> Result:
    return Result(json.dumps(value).encode())


def failed(message: str, category: str = "user") -> Result:
    return Result(json.dumps({"error": message, "category": category}).encode(), failed=True)


class ServedModel:
    def __init__(
        self,
        spec: ModelSpec,
        journal: Journal,
        futures: FutureTable,
        every: int,
        backend: ServingClient,
        gate: FairGate | None = None,
        residency: Residency | None = None,
    ) -> None:
        self.spec = spec
        self.gate = FairGate() if gate is None else gate
        self.residency = Residency(None) if residency is None else residency
        self.journal = journal
        self.futures = futures
        self.every = max(1, every)
        self.backend = backend
        self.next_seq_id = 1
        self.steps = 0  # optimizer steps accepted
        self.done_steps = 0  # optimizer steps executed
        self.attempt = 1
        self.client: ServedTrainingClient | None = None
        self.ready = asyncio.Event()
        self.broken: str | None = None
        self._cond = asyncio.Condition()
        self._queue: asyncio.Queue[Op | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._losses: list[float] = []
        self._last_metrics: dict[str, float] = {}
        self._queued_steps = 0
        self.plan: RebuildPlan | None = None  # set when rebuilt from the log
        self._lock = asyncio.Lock()  # held while a request runs, a load, or an unload
        self._load_from: list[tuple[Path, bool]] = []
        self._redo: list[Op] = []  # forward_backward requests since the last clean point
        self._clean_seq = 0  # the last request event after which no gradient was pending
        self._unloads = 0
        self.pending = 0  # accepted requests not yet run
        self.waiting_for: str | None = None  # why the next request does not run yet

    @property
    def model_id(self) -> str:
        return self.spec.model_id

    @property
    def owner(self) -> str:
        return self.spec.owner

    def folder(self, kind: str, name: str) -> Path:
        return ids.owner_path(
            self.journal.owner_dir(self.owner), "runs", self.spec.run_id, kind, name
        )

    # ------------------------------------------------------------------ start

    async def start(self, load: list[tuple[Path, bool]], restored: dict[str, Result]) -> None:
        """Queue the work; the client is built (and ``load`` loaded, folder and with
        optimizer, in order) when the first request runs."""
        self._load_from = load
        for rid, result in restored.items():
            self.futures.create(rid, self.owner, self.model_id)
            self.futures.resolve(rid, result)
        self.ready.set()
        self._task = asyncio.create_task(self._run(), name=f"serve:{self.model_id}")

    async def warm(self) -> None:
        """Load the model now (a new model: a bad source shows at creation)."""
        async with self._lock:
            await self._ensure_loaded()

    async def _ensure_loaded(self) -> None:
        if self.broken is not None:
            return
        if self.client is not None:
            self.residency.touch(self)
            return
        self.waiting_for = "waiting for a resident model's place"
        await self.residency.admit(self)
        self.waiting_for = "waiting for the model to load"
        spec = self.spec
        try:
            async with self.gate.turn(self.owner, self.model_id):
                client = await asyncio.to_thread(
                    lambda: self.backend.create_served_training_client(
                        spec.base_model,
                        spec.lora_rank,
                        seed=spec.seed,
                        train_attn=spec.train_attn,
                        train_mlp=spec.train_mlp,
                        max_tokens_per_microbatch=spec.max_tokens_per_microbatch,
                    )
                )
                self.client = client
                for folder, optimizer in self._load_from:
                    await wait(client.load_state(folder, optimizer))
                for op in self._redo:  # gradients pending when it was unloaded
                    p = op.payload
                    out = await wait(client.forward_backward(p.data, p.loss_fn, p.loss_fn_config))
                    self._losses.append(out.metrics.get("loss:sum", 0.0))
            self.done_steps = client.step
        except (KitchenError, OSError, ValueError) as exc:
            self.broken = f"cannot build model {self.model_id}: {exc}"
            log.error("%s", self.broken)
            self.residency.drop(self)
        finally:
            self.waiting_for = None

    def evictable(self) -> bool:
        return self.client is not None and not self._lock.locked()

    def has_work(self) -> bool:
        return not self._queue.empty()

    async def unload(self) -> bool:
        """Checkpoint at the last clean point and release the client (see the module)."""
        client = self.client
        if client is None or self._lock.locked():
            return False
        async with self._lock:
            self._unloads += 1
            name = checkpoint_name(self.done_steps, f"a{self.attempt}-u{self._unloads}")
            try:
                ref = await self._write_checkpoint(client, name, self._clean_seq)
            except (KitchenError, OSError) as exc:
                log.error("cannot unload %s: %s", self.model_id, exc)
                return False
            self._load_from = [(state_folder(self.journal.blobs.local_path(ref.uri)), True)]
            self._losses = []  # the forward_backward requests run again on the next load
            self.client = None
            await asyncio.to_thread(client.close)
            log.info("unloaded %s at step %d", self.model_id, self.done_steps)
            return True

    def enqueue_replay(self, op: Op) -> None:
        self.futures.create(op.request_id, self.owner, self.model_id)
        self._queued_steps += op.kind == "optim_step"
        self._queue.put_nowait(op)

    def enqueue_marker(self) -> None:
        """A None in the queue: the replayed requests before it are done (see ``_run``)."""
        self._queue.put_nowait(None)

    # ------------------------------------------------------------------ accept

    async def accept(self, kind: str, seq_id: int | None, body: bytes, payload: Any) -> str:
        """Put the request on record in seq_id order and queue it; return its request id."""
        if seq_id is None or seq_id < 1:
            raise bad_request("seq_id is required and starts at 1")
        rid = ids.request_id(self.model_id, seq_id)
        async with self._cond:
            if seq_id < self.next_seq_id:
                return rid  # a retry of a request already on record
            if seq_id > self.next_seq_id + MAX_AHEAD:
                raise bad_request(f"seq_id {seq_id} is far ahead of {self.next_seq_id}")
            try:
                await asyncio.wait_for(
                    self._cond.wait_for(lambda: self.next_seq_id >= seq_id), ORDER_WAIT_S
                )
            except TimeoutError:
                raise bad_request(
                    f"seq_id {seq_id} waited {ORDER_WAIT_S:.0f}s for seq_id {self.next_seq_id}"
                ) from None
            if seq_id < self.next_seq_id:
                return rid
            dest = "gradients" if kind == "forward_backward" else "ready"
            recorded = self.journal.record_input(
                self.spec, self.owner, kind, seq_id, body, self.steps, dest
            )
            event_seq = await asyncio.wrap_future(recorded)
            faults.point(f"serve:accept:{kind}")  # on record, not yet acknowledged
            if kind == "optim_step":
                self.steps += 1
            elif kind == "load_weights":
                self.steps = saved_step(Path(payload["folder"]), self.steps)
            self.next_seq_id = seq_id + 1
            self.futures.create(rid, self.owner, self.model_id)
            self.pending += 1
            self._queue.put_nowait(Op(kind, seq_id, rid, event_seq, payload))
            self._cond.notify_all()
        return rid

    # ------------------------------------------------------------------ execute

    async def _run(self) -> None:
        replayed_steps = 0
        while True:
            op = await self._queue.get()
            if op is None:
                await asyncio.to_thread(self._record_rebuild, replayed_steps)
                continue
            async with self._lock:
                await self._ensure_loaded()
                if self.broken is not None:
                    self._done(op, failed(self.broken, "server"))
                    continue
                faults.point(f"serve:{'replay' if op.replay else 'execute'}:{op.kind}")
                self.waiting_for = "waiting for its turn"
                async with self.gate.turn(self.owner, self.model_id):
                    self.waiting_for = None
                    result = await self._guarded(op)
                self._done(op, result)
                if op.kind == "optim_step" and not result.failed:
                    replayed_steps += op.replay
                    await self._after_step(op)
            self.residency.touch(self)

    def _done(self, op: Op, result: Result) -> None:
        if not op.replay:
            self.pending -= 1
        self.futures.resolve(op.request_id, result)
        if op.kind == "forward_backward":
            self._redo.append(op)
        elif op.kind in ("optim_step", "load_weights"):
            self._redo = []
            self._clean_seq = op.event_seq
        elif not self._redo:
            self._clean_seq = op.event_seq

    async def _guarded(self, op: Op) -> Result:
        try:
            return await self._execute(op)
        except ApiError as exc:
            return failed(exc.message, exc.category)
        except InfrastructureError as exc:  # a full or read-only disk: the server's fault
            return failed(str(exc), "server")
        except KitchenError as exc:
            return failed(str(exc))
        except Exception as exc:  # a bug: fail this request, keep serving the rest
            log.exception("request %s failed", op.request_id)
            return failed(f"{type(exc).__name__}: {exc}", "server")

    def _record_rebuild(self, replayed_steps: int) -> None:
        if self.plan is not None:
            self.journal.record_rebuild(self.plan, self.done_steps, replayed_steps)

    async def _execute(self, op: Op) -> Result:
        from kitchen.serve import wire

        client = self.client
        assert client is not None
        p = op.payload
        if op.kind in ("forward_backward", "forward"):
            call = client.forward_backward if op.kind == "forward_backward" else client.forward
            out = await wait(call(p.data, p.loss_fn, p.loss_fn_config))
            if op.kind == "forward_backward":
                self._losses.append(out.metrics.get("loss:sum", 0.0))
            return Result(wire.encode_forward_backward(out), PROTO)
        if op.kind == "optim_step":
            step = await wait(client.optim_step(AdamParams(**p)))
            self.done_steps += 1
            self._last_metrics = {**step.metrics, "loss:sum": sum(self._losses)}
            self._losses = []
            return as_json({"metrics": step.metrics, "type": "optim_step"})
        if op.kind == "load_weights":
            folder = Path(p["folder"])
            await wait(client.load_state(folder, bool(p["optimizer"])))
            self.done_steps = client.step
            return as_json({"path": p["path"], "model_id": self.model_id, "type": "load_weights"})
        return await self._save(op, client)

    async def _save(self, op: Op, client: ServedTrainingClient) -> Result:
        p = op.payload
        kind, name = p["kind"], p["name"]
        folder = self.folder(kind, name)
        path = str(ids.TinkerPath(self.model_id, kind, name))
        if folder.exists() and not op.replay:
            raise bad_request(f"checkpoint {path} exists: pick another name")
        if not folder.exists():
            if kind == "weights":

                def fill(tmp: Path) -> None:
                    client.save_state(tmp).result()
                    faults.point("serve:save:mid")  # written, not yet renamed into place
            else:

                def fill(tmp: Path) -> None:
                    client.save_weights_for_sampler(tmp).result()

            key = folder.relative_to(self.journal.home.resolve()).as_posix()
            await asyncio.to_thread(self.journal.blobs.write_dir, key, fill)
        if op.kind == "save_weights":
            return as_json({"path": path, "type": "save_weights"})
        if op.kind == "save_weights_external":
            size = sum(f.stat().st_size for f in folder.iterdir() if not f.name.startswith("."))
            return as_json({"path": path, "size_bytes": size, "type": "save_weights_external"})
        sampler = None
        if p.get("sampling_session_seq_id") is not None:
            sampler = ids.sampler_id(self.spec.session_id, int(p["sampling_session_seq_id"]))
            record = {"owner": self.owner, "base_model": self.spec.base_model, "model_path": path}
            await asyncio.to_thread(self.journal.save_sampler, sampler, record)
        return as_json(
            {"path": path, "sampling_session_id": sampler, "type": "save_weights_for_sampler"}
        )

    async def _after_step(self, op: Op) -> None:
        metrics = self._last_metrics
        if not op.replay and self.spec.loggers:
            await asyncio.to_thread(
                self.journal.record_metrics, self.spec, self.done_steps - 1, metrics
            )
        elif not op.replay:  # nothing to feed: the next request need not wait for the append
            step = self.done_steps - 1
            recorded = self.journal.submit_metrics(self.spec, step, metrics)
            recorded.add_done_callback(lambda f: _metrics_failed(self.model_id, step, f))
        if self.done_steps % self.every == 0:
            await self._checkpoint(op)

    async def _checkpoint(self, op: Op) -> None:
        """State + results not yet retrieved, written atomically, then CheckpointSaved."""
        client = self.client
        assert client is not None
        name = checkpoint_name(self.done_steps, f"a{self.attempt}")
        try:
            await self._write_checkpoint(client, name, op.event_seq)
        except (KitchenError, OSError) as exc:
            log.error("checkpoint of %s at step %d failed: %s", self.model_id, self.done_steps, exc)

    async def _write_checkpoint(
        self, client: ServedTrainingClient, name: str, request_seq: int
    ) -> BlobRef:
        key = checkpoint_key(self.spec.run_dir, name)
        pending = {rid: r.as_json() for rid, r in self.futures.unretrieved(self.model_id).items()}

        def fill(tmp: Path) -> None:
            client.save_state(state_folder(tmp)).result()
            (tmp / "results.json").write_text(json.dumps(pending, sort_keys=True))

        ref = await asyncio.to_thread(self.journal.blobs.write_dir, key, fill)
        faults.point("serve:checkpoint:after_blob")
        await asyncio.to_thread(
            self.journal.record_checkpoint, self.spec, name, self.done_steps, ref, request_seq
        )
        return ref

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        if self.client is not None:
            await asyncio.to_thread(self.client.close)


def _metrics_failed(model_id: str, step: int, recorded: Future[list[StoredEvent]]) -> None:
    exc = recorded.exception()
    if exc is not None:
        log.error("metrics of %s at step %d not recorded: %s", model_id, step, exc)


def saved_step(folder: Path, default: int) -> int:
    """The optimizer step a saved state holds (its state.json), so later events count on
    from there; the executor's own count comes from the loaded client."""
    try:
        return int(json.loads((folder / "state.json").read_text())["step"])
    except (OSError, ValueError, KeyError, TypeError):
        return default


def load_checkpoint_results(folder: Path) -> dict[str, Result]:
    path = folder / "results.json"
    if not path.is_file():
        return {}
    return {rid: Result.from_json(v) for rid, v in json.loads(path.read_text()).items()}
