"""The served models in a process of their own: a :class:`ServingClient` that forwards every
call over a pipe to the real backend, built in a child process.

Why: in one process, the thread that runs torch shares the interpreter lock with the event
loop and the journal's threads. On a small model a forward is mostly Python between short
kernels, so every millisecond of Python a request costs the server lengthens the step that
runs beside it (``bench/lock_share.py``). In a child of its own, the backend's torch thread
has a lock of its own, and the server's Python runs on the other cores.

What crosses the pipe is the port's own values (datums, parameters, outputs: plain
dataclasses) and paths; weights and optimizer state never do, since checkpoints are folders
on disk that the child writes and reads itself. Clients are handles: the parent holds a
proxy whose methods return ``concurrent.futures.Future`` objects at once, resolved by a
reader thread when the child answers, so the server awaits them as it awaits the backend's
own futures. Calls reach the child in the order they were made and the child submits them to
its backend in that order, which keeps the TrainingClient contract (operations run in
submission order).

Lifetimes: the child exits when the pipe closes, so a ``kill -9`` of the server takes it
along at once (it holds nothing that is not on disk or on record); it ignores SIGINT and
SIGTERM and is stopped by :meth:`ModelProcess.close`. If the child dies under a running
server (the kernel's OOM killer, a crash in a native library), ``on_death`` is called with a
one-line reason: ``kitchen serve`` then stops at once, as if killed, and a restart rebuilds
every model from the log.
"""

from __future__ import annotations

import collections
import concurrent.futures
import itertools
import logging
import os
import pickle
import queue
import signal
import socket
import subprocess
import sys
import threading
import weakref
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from kitchen.errors import InfrastructureError
from kitchen.types import (
    AdamParams,
    CustomLossFn,
    Datum,
    ForwardBackwardOutput,
    LossFnType,
    ModelInput,
    OptimStepResponse,
    SampleResponse,
    SamplingParams,
    SavedState,
)

log = logging.getLogger("kitchen.serve")

SERVICE = 0
"""The handle of the backend itself; clients get handles from 1 on."""

BLOCKING = frozenset(
    {
        "create_lora_training_client",
        "create_training_client_from_state",
        "create_sampling_client",
        "create_served_training_client",
        "create_served_sampling_client",
        "get_tokenizer",
        "verify_checkpoint",
        "describe",
        "resolve_model",
        "loaded_bases",
        "vocab_size",
        "close",
    }
)
"""Calls that block until they are done (loading a model, closing a client): the child runs
them on a thread pool so that it keeps taking other calls meanwhile. Every other call returns
at once (a future, or a value such as a batch key) and is made in the order it arrived."""


@dataclass(frozen=True, slots=True)
class Handle:
    """A client that lives in the child: ``kind`` is ``training`` or ``sampling``."""

    id: int
    kind: str


class ModelProcess:
    """A ServingClient whose backend, and every client it makes, lives in a child process.

    ``factory`` (picklable: a module-level function, or a partial of one) builds the backend in
    the child. The child starts at once and loads nothing until asked; calls made before it is
    ready wait in the pipe.
    """

    def __init__(
        self,
        factory: Callable[[], Any],
        *,
        on_death: Callable[[str], None] | None = None,
        name: str = "kitchen-models",
    ) -> None:
        ours, theirs = socket.socketpair()
        # A fresh interpreter (not multiprocessing's spawn, which re-imports the caller's main
        # module): it reads the factory as its first message.
        self._process = subprocess.Popen(
            [sys.executable, "-m", "kitchen.serve.model_process", str(theirs.fileno())],
            pass_fds=(theirs.fileno(),),
            stdin=subprocess.DEVNULL,
        )
        theirs.close()
        self._conn = Connection(ours.detach())
        self._conn.send(factory)
        self._send_lock = threading.Lock()
        self._released: collections.deque[int] = collections.deque()
        self._calls: dict[int, concurrent.futures.Future[Any]] = {}
        self._calls_lock = threading.Lock()
        self._ids = itertools.count(1)
        self._closing = False
        self._dead: str | None = None
        self._on_death = on_death
        self._reader = threading.Thread(target=self._read, name=f"{name}-reader", daemon=True)
        self._reader.start()

    # ------------------------------------------------------------------ the pipe

    def call(
        self, handle: int, method: str, *args: Any, **kwargs: Any
    ) -> concurrent.futures.Future[Any]:
        """Send one call; its future resolves with the child's answer (a proxy for a client)."""
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        call_id = next(self._ids)
        with self._calls_lock:  # the reader fails what is registered once it knows the end
            if self._dead is not None:
                future.set_exception(InfrastructureError(self._dead))
                return future
            self._calls[call_id] = future
        try:
            with self._send_lock:
                while self._released:
                    self._conn.send((0, self._released.popleft(), "__release__", (), {}))
                self._conn.send((call_id, handle, method, args, kwargs))
        except (OSError, EOFError, ValueError) as exc:
            with self._calls_lock:
                self._calls.pop(call_id, None)
            future.set_exception(InfrastructureError(f"the model process is gone: {exc}"))
        return future

    def release(self, handle: int) -> None:
        """Forget a client the parent dropped without closing it (a sampler let go): the
        child hears it with the next call. Called by the garbage collector, which may run in
        any thread, even one sending, so it only queues the handle."""
        self._released.append(handle)

    def _read(self) -> None:
        while True:
            try:
                call_id, ok, value = self._conn.recv()
            except (EOFError, OSError):
                break
            except Exception as exc:  # an answer that does not unpickle here
                log.exception("an answer of the model process could not be read")
                self._fail_all(f"an answer of the model process could not be read: {exc}")
                continue
            if call_id == 0:  # the child could not start
                self._dead = str(value)
                break
            with self._calls_lock:
                future = self._calls.pop(call_id, None)
            if future is None:
                continue
            if ok:
                future.set_result(self._wrap(value))
            else:
                future.set_exception(value)
        try:
            code: int | None = self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            code = None
        if self._dead is None:
            self._dead = (
                "the model process stopped"
                if self._closing
                else f"the model process died ({_exit_text(code)})"
            )
        if not self._closing and self._on_death is not None:
            self._on_death(self._dead)
        self._fail_all(self._dead)

    def _fail_all(self, reason: str) -> None:
        with self._calls_lock:
            calls, self._calls = self._calls, {}
        for future in calls.values():
            if not future.done():
                future.set_exception(InfrastructureError(reason))

    def _wrap(self, value: Any) -> Any:
        if isinstance(value, Handle):
            proxy: _Remote = (
                RemoteTrainingClient(self, value.id)
                if value.kind == "training"
                else RemoteSamplingClient(self, value.id)
            )
            weakref.finalize(proxy, self.release, value.id)
            return proxy
        return value

    def _sync(self, handle: int, method: str, *args: Any, **kwargs: Any) -> Any:
        return self.call(handle, method, *args, **kwargs).result()

    # ------------------------------------------------------------------ ServingClient

    def create_served_training_client(
        self,
        base_model: str,
        rank: int,
        *,
        seed: int,
        train_attn: bool = True,
        train_mlp: bool = True,
        max_tokens_per_microbatch: int | None = None,
    ) -> RemoteTrainingClient:
        client: RemoteTrainingClient = self._sync(
            SERVICE,
            "create_served_training_client",
            base_model,
            rank,
            seed=seed,
            train_attn=train_attn,
            train_mlp=train_mlp,
            max_tokens_per_microbatch=max_tokens_per_microbatch,
        )
        return client

    def create_served_sampling_client(
        self,
        base_model: str,
        rank: int,
        *,
        train_attn: bool = True,
        train_mlp: bool = True,
        adapter_dir: Path | None = None,
    ) -> RemoteSamplingClient:
        client: RemoteSamplingClient = self._sync(
            SERVICE,
            "create_served_sampling_client",
            base_model,
            rank,
            train_attn=train_attn,
            train_mlp=train_mlp,
            adapter_dir=adapter_dir,
        )
        return client

    def create_lora_training_client(
        self,
        base_model: str,
        rank: int = 32,
        *,
        seed: int | None = None,
        alpha: int | None = None,
        dropout: float = 0.0,
        train_unembed: bool = False,
    ) -> RemoteTrainingClient:
        client: RemoteTrainingClient = self._sync(
            SERVICE,
            "create_lora_training_client",
            base_model,
            rank,
            seed=seed,
            alpha=alpha,
            dropout=dropout,
            train_unembed=train_unembed,
        )
        return client

    def create_training_client_from_state(
        self,
        path: str,
        *,
        base_model: str,
        rank: int = 32,
        seed: int | None = None,
        alpha: int | None = None,
        dropout: float = 0.0,
        with_optimizer: bool = True,
    ) -> RemoteTrainingClient:
        client: RemoteTrainingClient = self._sync(
            SERVICE,
            "create_training_client_from_state",
            path,
            base_model=base_model,
            rank=rank,
            seed=seed,
            alpha=alpha,
            dropout=dropout,
            with_optimizer=with_optimizer,
        )
        return client

    def create_sampling_client(
        self,
        *,
        base_model: str | None = None,
        model_path: str | None = None,
        seed: int = 0,
    ) -> RemoteSamplingClient:
        client: RemoteSamplingClient = self._sync(
            SERVICE,
            "create_sampling_client",
            base_model=base_model,
            model_path=model_path,
            seed=seed,
        )
        return client

    def get_tokenizer(self, base_model: str) -> Any:
        return self._sync(SERVICE, "get_tokenizer", base_model)

    def verify_checkpoint(self, uri: str, sha256: str) -> bool:
        return bool(self._sync(SERVICE, "verify_checkpoint", uri, sha256))

    def describe(self) -> Mapping[str, str]:
        described: Mapping[str, str] = self._sync(SERVICE, "describe")
        return described

    def resolve_model(self, base_model: str) -> str:
        return str(self._sync(SERVICE, "resolve_model", base_model))

    def loaded_bases(self) -> Mapping[str, int]:
        loaded: Mapping[str, int] = self._sync(SERVICE, "loaded_bases")
        return loaded

    def vocab_size(self, base_model: str) -> int:
        return int(self._sync(SERVICE, "vocab_size", base_model))

    def close(self) -> None:
        """Close the backend (and every client it tracks), then stop the child."""
        if self._closing:
            return
        self._closing = True  # the child's exit from now on is expected
        try:
            if self._dead is None:
                self._sync(SERVICE, "close")
        except InfrastructureError:
            pass
        finally:
            self._conn.close()
            try:
                self._process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._reader.join(timeout=5)


class _Remote:
    def __init__(self, process: ModelProcess, handle: int) -> None:
        self._process = process
        self._handle = handle

    def _call(self, method: str, *args: Any, **kwargs: Any) -> concurrent.futures.Future[Any]:
        return self._process.call(self._handle, method, *args, **kwargs)

    def get_tokenizer(self) -> Any:
        return self._call("get_tokenizer").result()

    def compute_logprobs(self, prompt: ModelInput) -> concurrent.futures.Future[list[float | None]]:
        return self._call("compute_logprobs", prompt)

    def close(self) -> None:
        self._call("close").result()


class RemoteTrainingClient(_Remote):
    """A ServedTrainingClient in the model process."""

    def forward_backward(
        self,
        data: Sequence[Datum],
        loss_fn: LossFnType = "cross_entropy",
        loss_fn_config: Mapping[str, float] | None = None,
    ) -> concurrent.futures.Future[ForwardBackwardOutput]:
        return self._call("forward_backward", list(data), loss_fn, loss_fn_config)

    def forward(
        self,
        data: Sequence[Datum],
        loss_fn: LossFnType = "cross_entropy",
        loss_fn_config: Mapping[str, float] | None = None,
    ) -> concurrent.futures.Future[ForwardBackwardOutput]:
        return self._call("forward", list(data), loss_fn, loss_fn_config)

    def forward_backward_custom(
        self, data: Sequence[Datum], loss_fn: CustomLossFn
    ) -> concurrent.futures.Future[ForwardBackwardOutput]:
        return self._call("forward_backward_custom", list(data), loss_fn)

    def optim_step(self, adam_params: AdamParams) -> concurrent.futures.Future[OptimStepResponse]:
        return self._call("optim_step", adam_params)

    def save_state(self, path: str | Path) -> concurrent.futures.Future[SavedState]:
        return self._call("save_state", path)

    def load_state(
        self, path: str | Path, with_optimizer: bool = True
    ) -> concurrent.futures.Future[SavedState]:
        return self._call("load_state", path, with_optimizer)

    def save_weights_for_sampler(self, path: str | Path) -> concurrent.futures.Future[str]:
        return self._call("save_weights_for_sampler", path)

    def sampling_client(self) -> RemoteSamplingClient:
        client: RemoteSamplingClient = self._call("sampling_client").result()
        return client

    @property
    def step(self) -> int:
        return int(self._call("__getattr__", "step").result())


class RemoteSamplingClient(_Remote):
    """A ServedSamplingClient in the model process."""

    def sample(
        self, prompt: ModelInput, num_samples: int, sampling_params: SamplingParams
    ) -> concurrent.futures.Future[SampleResponse]:
        return self._call("sample", prompt, num_samples, sampling_params)

    def sample_batch(
        self, prompts: Sequence[ModelInput], sampling_params: SamplingParams
    ) -> concurrent.futures.Future[list[SampleResponse]]:
        return self._call("sample_batch", list(prompts), sampling_params)

    def batch_key(
        self, prompt: ModelInput, num_samples: int, sampling_params: SamplingParams
    ) -> Hashable | None:
        key: Hashable | None = self._call(
            "batch_key", prompt, num_samples, sampling_params
        ).result()
        return key

    def sample_together(
        self, requests: Sequence[tuple[ModelInput, int, SamplingParams]]
    ) -> concurrent.futures.Future[list[SampleResponse]]:
        return self._call("sample_together", list(requests))


def _exit_text(code: int | None) -> str:
    if code is None:
        return "exit code unknown"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


# ---------------------------------------------------------------------- the child


def _portable(exc: BaseException) -> BaseException:
    """``exc`` as it can cross the pipe: itself when it pickles and unpickles, else an
    InfrastructureError with its type and message."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:
        return InfrastructureError(f"{type(exc).__name__}: {exc}")


def _child(conn: Any) -> None:
    """The model process: build the backend, then take calls until the pipe closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the server decides when this one stops
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    answers: queue.SimpleQueue[tuple[int, bool, Any] | None] = queue.SimpleQueue()

    def send_answers() -> None:
        while (answer := answers.get()) is not None:
            call_id, ok, value = answer
            if not ok:
                value = _portable(value)
            try:
                conn.send((call_id, ok, value))
            except (OSError, EOFError, ValueError):
                os._exit(0)  # the server is gone
            except Exception as exc:  # a value that does not pickle
                conn.send((call_id, False, InfrastructureError(f"cannot send the answer: {exc}")))

    sender = threading.Thread(target=send_answers, name="kitchen-models-sender", daemon=True)
    sender.start()
    try:
        factory = conn.recv()
        service = factory()
    except Exception as exc:
        answers.put((0, False, f"the model process could not start: {exc}"))
        answers.put(None)
        sender.join(timeout=10)
        os._exit(1)
    objects: dict[int, Any] = {SERVICE: service}
    handles = itertools.count(1)
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="models-call")

    def answer(call_id: int, value: Any) -> None:
        if isinstance(value, concurrent.futures.Future):
            value.add_done_callback(lambda f: settle(call_id, f))
            return
        if _is_client(value):
            handle = next(handles)
            objects[handle] = value
            value = Handle(handle, "training" if hasattr(value, "optim_step") else "sampling")
        answers.put((call_id, True, value))

    def settle(call_id: int, future: concurrent.futures.Future[Any]) -> None:
        exc = future.exception()
        if exc is not None:
            answers.put((call_id, False, exc))
        else:
            answer(call_id, future.result())

    def run(call_id: int, target: Any, method: str, args: Any, kwargs: Any, handle: int) -> None:
        try:
            if method == "__getattr__":
                value = getattr(target, args[0])
            else:
                value = getattr(target, method)(*args, **kwargs)
            if method == "close" and handle != SERVICE:
                objects.pop(handle, None)
            answer(call_id, value)
        except Exception as exc:
            answers.put((call_id, False, exc))

    while True:
        try:
            call_id, handle, method, args, kwargs = conn.recv()
        except (EOFError, OSError):
            break
        if method == "__release__":
            objects.pop(handle, None)
            continue
        target = objects.get(handle)
        if target is None:
            answers.put((call_id, False, InfrastructureError(f"no client {handle} here")))
        elif method in BLOCKING:
            if handle == SERVICE and method == "close":
                run(call_id, target, method, args, kwargs, handle)
                break
            pool.submit(run, call_id, target, method, args, kwargs, handle)
        else:
            run(call_id, target, method, args, kwargs, handle)
    answers.put(None)
    sender.join(timeout=10)
    os._exit(0)


def _is_client(value: Any) -> bool:
    return hasattr(value, "compute_logprobs") and hasattr(value, "close")


if __name__ == "__main__":  # run by ModelProcess; its classes must be this module's, by name
    from kitchen.serve import model_process

    model_process._child(Connection(int(sys.argv[1])))
