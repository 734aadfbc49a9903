"""The ports: narrow Protocols the engine and the stages are built against.

Each docstring is the contract every implementation must keep; each port has a contract
test suite under ``tests/contracts/`` written once and subclassed per adapter. Adapters live
in ``kitchen/adapters/``; recipes choose them by name in their adapters manifest.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from kitchen.types import (
    AdamParams,
    CustomLossFn,
    Datum,
    ForwardBackwardOutput,
    Future,
    LossFnType,
    ModelInput,
    OptimStepResponse,
    SampleResponse,
    SamplingParams,
    SavedState,
)

if TYPE_CHECKING:  # the store's records; importing the store itself would pull SQLAlchemy in
    from kitchen.log_records import Lease, NewEvent, Snapshot, StoredEvent


@runtime_checkable
class Tokenizer(Protocol):
    """The subset of a Hugging Face tokenizer kitchen uses."""

    eos_token_id: int | None
    bos_token_id: int | None
    pad_token_id: int | None

    def encode(self, text: str, add_special_tokens: bool = ...) -> list[int]: ...

    def decode(self, token_ids: Sequence[int], skip_special_tokens: bool = ...) -> str: ...


@runtime_checkable
class SamplingClient(Protocol):
    """Generates from fixed weights.

    Contract:
    - ``sample`` returns ``num_samples`` sequences of at most ``max_tokens`` new tokens each
      (the prompt is not repeated). ``stop`` (strings or token ids) ends a sequence and the
      stop reason is ``"stop"``; otherwise ``"length"``. The stop text itself is included.
    - The same prompt, params and ``seed`` give the same tokens; ``temperature == 0`` is greedy.
    - ``compute_logprobs`` returns one entry per prompt token: ``None`` for the first,
      then log p(token_i | tokens_<i).
    - Weights do not change under a sampling client after it was made.
    """

    def sample(
        self, prompt: ModelInput, num_samples: int, sampling_params: SamplingParams
    ) -> Future[SampleResponse]: ...

    def compute_logprobs(self, prompt: ModelInput) -> Future[list[float | None]]: ...

    def sample_batch(
        self, prompts: Sequence[ModelInput], sampling_params: SamplingParams
    ) -> Future[list[SampleResponse]]:
        """One sequence per prompt, as ``sample(prompt, 1, params)`` for each in order would
        give; a backend may batch them."""
        ...

    def get_tokenizer(self) -> Tokenizer: ...

    def close(self) -> None:
        """Release what the client holds; it must not be used afterwards."""
        ...


@runtime_checkable
class TrainingClient(Protocol):
    """A model being trained (tinker's TrainingClient shape).

    Contract:
    - Every method returns at once with a future; operations run in submission order, so a
      caller may submit step N+1's ``forward_backward`` before taking step N's result.
    - ``forward(data, loss_fn)`` is ``forward_backward``'s forward pass alone (same mode, same
      per-token ``logprobs`` and ``loss:sum``) with no gradient kept: what a client-side custom
      loss linearises, tinker's way, before a plain ``forward_backward``.
    - ``forward_backward`` accumulates gradients; ``optim_step`` applies and clears them and
      advances the step counter by exactly one. Loss outputs carry per-token ``logprobs``;
      metrics carry ``loss:sum`` (sum of weight × -logprob for cross_entropy).
    - A NaN or infinite loss fails the future with ``TrainingDiverged`` naming the step.
    - ``save_state(path)`` writes everything needed to continue bit-exactly (weights,
      optimizer state, step, RNG states) into the existing empty folder ``path``; saving the same
      state twice writes byte-identical files. ``load_state(path, with_optimizer)`` restores it.
      A remote backend saves to its own storage and returns a reference (``SavedState.path``,
      e.g. ``tinker://…``) that ``load_state`` accepts.
    - ``load_state`` also accepts a PEFT adapter folder written by ``save_weights_for_sampler``
      (weights only; the optimizer starts afresh): that is how a run starts from another
      run's final adapter.
    - ``save_weights_for_sampler(path)`` writes a PEFT adapter folder loadable by plain peft.
    - ``sampling_client()`` snapshots the current weights for sampling.
    - ``close()`` finishes queued operations and releases the client.
    """

    def forward_backward(
        self,
        data: Sequence[Datum],
        loss_fn: LossFnType = "cross_entropy",
        loss_fn_config: Mapping[str, float] | None = None,
    ) -> Future[ForwardBackwardOutput]: ...

    def forward(
        self, data: Sequence[Datum], loss_fn: LossFnType = "cross_entropy"
    ) -> Future[ForwardBackwardOutput]: ...

    def forward_backward_custom(
        self, data: Sequence[Datum], loss_fn: CustomLossFn
    ) -> Future[ForwardBackwardOutput]: ...

    def optim_step(self, adam_params: AdamParams) -> Future[OptimStepResponse]: ...

    def save_state(self, path: str | Path) -> Future[SavedState]: ...

    def load_state(self, path: str | Path, with_optimizer: bool = True) -> Future[SavedState]: ...

    def save_weights_for_sampler(self, path: str | Path) -> Future[str]: ...

    def sampling_client(self) -> SamplingClient: ...

    def get_tokenizer(self) -> Tokenizer: ...

    def compute_logprobs(self, prompt: ModelInput) -> Future[list[float | None]]: ...

    def close(self) -> None: ...

    @property
    def step(self) -> int:
        """Optimizer steps applied so far (restored by ``load_state``)."""
        ...


@runtime_checkable
class OnePassCustomLoss(Protocol):
    """A training client that can take a custom loss's gradient in one pass: an in-process
    backend, where ``loss_fn`` can see log-probabilities that still carry the graph.

    Contract:
    - ``custom_loss_in_one_pass(data)`` answers at once, without waiting for queued work:
      True when ``forward_backward_custom(data, loss_fn)`` will make one forward pass with a
      graph, call ``loss_fn`` once on all of ``data``'s log-probabilities and back-propagate
      through that same pass (the call fits one micro-batch, on one process); False when it
      would need two passes (or when the caller should take the two-pass form itself).
    - When True, that call gives the loss, per-token log-probabilities and gradients of the
      two-pass form (``forward``, the loss's gradient with respect to the log-probabilities
      taken by the caller, then ``forward_backward`` with it as ``cross_entropy`` weights), up
      to float rounding: log-probabilities within rtol 1e-5 / atol 1e-6, the loss within 1e-5
      relative, the gradients within 1e-5 of their norm. ``loss_fn`` is the same function in
      both forms and always sees the whole call's data at once.
    """

    def custom_loss_in_one_pass(self, data: Sequence[Datum]) -> bool: ...


@runtime_checkable
class ServiceClient(Protocol):
    """Makes training and sampling clients (tinker's ``ServiceClient`` shape): the factory a
    workflow uses to hold a policy, a frozen reference and a teacher at once.

    Contract:
    - ``create_lora_training_client(base_model, rank, ...)`` returns a fresh LoRA on the base
      model; the same arguments and ``seed`` give the same initial weights.
    - ``create_training_client_from_state(path, ...)`` returns a client holding a saved state
      (a ``save_state`` folder or remote reference, or a PEFT adapter folder: weights only).
    - ``create_sampling_client(base_model=…)`` samples from a base model;
      ``create_sampling_client(model_path=…)`` from saved sampler weights (a PEFT adapter folder
      or remote reference) on ``base_model``. Its weights never change.
    - ``get_tokenizer(base_model)`` gives that model's tokenizer without loading the model.
    - ``verify_checkpoint(uri, sha256)`` says whether a remote checkpoint reference still
      resolves to the state that was recorded (local folders are verified by the blob store).
    - ``describe()`` says what the backend is, as strings (``backend``, and where it applies
      ``device`` and ``torch_threads``): recorded with every attempt, so a resume on other
      hardware is on record.
    - ``close()`` closes every client it made that is still open.
    """

    def create_lora_training_client(
        self,
        base_model: str,
        rank: int = 32,
        *,
        seed: int | None = None,
        alpha: int | None = None,
        dropout: float = 0.0,
        train_unembed: bool = False,
    ) -> TrainingClient: ...

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
    ) -> TrainingClient: ...

    def create_sampling_client(
        self,
        *,
        base_model: str | None = None,
        model_path: str | None = None,
        seed: int = 0,
    ) -> SamplingClient: ...

    def get_tokenizer(self, base_model: str) -> Tokenizer: ...

    def verify_checkpoint(self, uri: str, sha256: str) -> bool: ...

    def describe(self) -> Mapping[str, str]: ...

    def close(self) -> None: ...


@runtime_checkable
class ServedTrainingClient(TrainingClient, Protocol):
    """A training client as ``kitchen serve`` drives it: tinker's ``forward`` also takes the
    loss's config, as ``forward_backward`` does (ppo's clip thresholds)."""

    def forward(
        self,
        data: Sequence[Datum],
        loss_fn: LossFnType = "cross_entropy",
        loss_fn_config: Mapping[str, float] | None = None,
    ) -> Future[ForwardBackwardOutput]: ...


@runtime_checkable
class ServedSamplingClient(SamplingClient, Protocol):
    """A sampling client as ``kitchen serve`` drives it: several ``sample`` calls may be
    decoded in one batch, where that changes no result.

    Contract:
    - ``batch_key(prompt, num_samples, params)`` is None for a call that must run alone;
      calls with equal keys may go to ``sample_together``.
    - ``sample_together([(prompt, num_samples, params), …])`` answers each call bit for bit
      (tokens and logprobs) as ``sample`` answers it alone; calls whose keys differ raise
      ``ConfigError``.
    """

    def batch_key(
        self, prompt: ModelInput, num_samples: int, sampling_params: SamplingParams
    ) -> Hashable | None: ...

    def sample_together(
        self, requests: Sequence[tuple[ModelInput, int, SamplingParams]]
    ) -> Future[list[SampleResponse]]: ...


@runtime_checkable
class ServingClient(ServiceClient, Protocol):
    """A ServiceClient that ``kitchen serve`` can serve tinker's API from: what the server
    needs beyond the factory, which a workflow never does.

    Contract:
    - ``create_served_training_client(base_model, rank, seed=…, train_attn=…, train_mlp=…,
      max_tokens_per_microbatch=…)`` returns a fresh LoRA like ``create_lora_training_client``
      with tinker's switches: both on adapt every linear projection but the output head, one
      of them only the attention or only the MLP projections, both off raises
      ``ConfigError``. ``max_tokens_per_microbatch`` is this client's micro-batch budget
      (None: one batch a call), whatever the service's own, because a served model keeps the
      budget it was created with. The same arguments give the same initial weights; the
      client's ``forward`` takes the loss's config.
    - ``create_served_sampling_client(base_model, rank, train_attn=…, train_mlp=…,
      adapter_dir=…)`` samples from ``base_model`` plus the adapter that
      ``save_weights_for_sampler`` wrote into ``adapter_dir`` from a client of that rank and
      those switches (None: the base model alone). It is built the same way whether the folder
      was written a moment ago or before a restart, so both give the same samples, and
      building it leaves the random state of the training clients as it was.
    - Both block until the model is loaded (call them from a worker thread) and hand the
      client over: the caller closes it, ``close()`` does not.
    - Clients of both kinds made on the same ``base_model`` share one copy of its frozen
      weights: the first loads it, every further one costs its own LoRA (and a training
      client its optimizer state), never another base. Sharing changes no result: a client
      computes bit for bit what the same client made alone in a fresh service does, however
      its calls interleave with other clients' on the same base. ``loaded_bases()`` names
      each base in memory (by ``resolve_model``) with the bytes its weights take, once each
      however many clients use it; a base stays loaded until the service is closed.
    - ``resolve_model(base_model)`` says where the model's files are (a local folder for a
      shipped or local model, else the hub id): what a client loads the tokenizer from.
    - ``vocab_size(base_model)`` is the size of the model's vocabulary, from its config.
    """

    def create_served_training_client(
        self,
        base_model: str,
        rank: int,
        *,
        seed: int,
        train_attn: bool = True,
        train_mlp: bool = True,
        max_tokens_per_microbatch: int | None = None,
    ) -> ServedTrainingClient: ...

    def create_served_sampling_client(
        self,
        base_model: str,
        rank: int,
        *,
        train_attn: bool = True,
        train_mlp: bool = True,
        adapter_dir: Path | None = None,
    ) -> ServedSamplingClient: ...

    def resolve_model(self, base_model: str) -> str: ...

    def loaded_bases(self) -> Mapping[str, int]: ...

    def vocab_size(self, base_model: str) -> int: ...


@runtime_checkable
class DatasetStore(Protocol):
    """Loads rows (dicts) from named sets, hub repos and local files.

    Contract:
    - ``load(source, split)`` accepts a hub repo name, a local ``.jsonl/.json/.parquet/.csv``
      path, or an embedded set name (``kitchen/…``) and returns a map-style dataset
      (``len``, ``__getitem__``, ``select``, ``shuffle(seed=…)``) of dict rows.
    - A malformed row raises ``ConfigError`` naming the file and the row index.
    - A hub source that is not cached while offline raises ``OfflineMiss`` (one line).
    - ``fingerprint(source, split)`` is a stable hex digest of the rows' content.
    - ``columns`` names fields every row must hold; a row without one is refused.
    """

    def load(
        self,
        source: str,
        split: str = "train",
        *,
        streaming: bool = False,
        columns: Sequence[str] = (),
    ) -> Any: ...

    def fingerprint(self, source: str, split: str = "train") -> str: ...

    def answer_checker(self, source: str) -> Callable[[Mapping[str, Any], str], bool] | None:
        """How to grade a completion for a row of ``source`` (exact match on its reference
        answer for the embedded sets), or None when the source defines none."""
        ...


@runtime_checkable
class HubClient(Protocol):
    """Reads model and dataset files from a hub (Hugging Face Hub or its local cache).

    Contract: honours ``HF_HOME`` and ``HF_HUB_OFFLINE``; a miss while offline raises
    ``OfflineMiss`` in one line; tokens never appear in errors or logs.
    """

    def download_file(
        self, repo_id: str, filename: str, *, revision: str | None = None
    ) -> Path: ...

    def snapshot(self, repo_id: str, *, revision: str | None = None) -> Path: ...

    def list_files(self, repo_id: str, *, revision: str | None = None) -> list[str]: ...

    def model_info(self, repo_id: str, *, revision: str | None = None) -> dict[str, Any]: ...


@dataclass(frozen=True, slots=True)
class BlobRef:
    """A blob that was written whole: where it is, its sha256 and size in bytes.

    For a folder, ``sha256`` covers the sorted relative paths and the contents of every file.
    """

    uri: str
    sha256: str
    bytes: int


@runtime_checkable
class Collectives(Protocol):
    """The collective operations one run on several processes needs (``torchrun``).

    Contract:
    - every process (rank) of the group calls the same operations in the same order; an
      operation returns on every rank once all have called it;
    - ``broadcast`` returns ``src``'s object on every rank (the others pass anything);
      ``all_gather`` returns every rank's object, in rank order, on every rank;
      ``all_reduce_sum`` replaces each tensor, in place, by its sum over the ranks, the same
      bits on every rank;
    - ``split`` makes a new channel over the same ranks whose operations never interleave
      with this one's (a training client's worker thread uses its own); every rank calls it;
    - a peer that does not answer within the timeout raises ``kitchen.errors.PeerLost``.
    """

    @property
    def rank(self) -> int: ...

    @property
    def world_size(self) -> int: ...

    @property
    def backend(self) -> str: ...

    def broadcast(self, obj: Any, src: int = 0) -> Any: ...

    def all_gather(self, obj: Any) -> list[Any]: ...

    def all_reduce_sum(self, tensors: Sequence[Any]) -> None: ...

    def barrier(self) -> None: ...

    def split(self) -> Collectives: ...


class SingleProcess:
    """``Collectives`` of a run on one process: every operation is the identity."""

    rank = 0
    world_size = 1
    backend = "none"

    def broadcast(self, obj: Any, src: int = 0) -> Any:
        return obj

    def all_gather(self, obj: Any) -> list[Any]:
        return [obj]

    def all_reduce_sum(self, tensors: Sequence[Any]) -> None:
        return None

    def barrier(self) -> None:
        return None

    def split(self) -> SingleProcess:
        return SingleProcess()


@runtime_checkable
class BlobStore(Protocol):
    """Stores checkpoints and weights.

    Contract:
    - ``write_dir(key, fill)`` calls ``fill(tmp_folder)`` and then makes the folder appear at
      ``key`` atomically (temp + fsync + rename): a reader never sees a partial folder, and a
      writer killed half-way leaves the old blob or nothing. Same for ``write_bytes``.
    - URIs of local blobs are relative to KITCHEN_HOME, so the home folder can move.
    - ``verify(ref)`` is True only if the blob exists and its sha256 matches.
    """

    def write_dir(self, key: str, fill: Callable[[Path], None]) -> BlobRef: ...

    def write_bytes(self, key: str, data: bytes) -> BlobRef: ...

    def read_bytes(self, uri: str) -> bytes: ...

    def local_path(self, uri: str) -> Path: ...

    def exists(self, uri: str) -> bool: ...

    def verify(self, ref: BlobRef) -> bool: ...

    def list(self, prefix: str = "") -> Iterator[str]: ...

    def delete(self, uri: str) -> None: ...


@runtime_checkable
class EventLog(Protocol):
    """A run's history as the engine (runner, unit of work, attempt guard, snapshots) uses it.

    ``kitchen.store.EventStore`` is the implementation; ``kitchen.testing.store_contract`` is
    the contract every implementation passes. In short:
    - ``append`` writes a batch after ``expected_seq`` (0: a new run), all or nothing; a seq
      already taken raises ``ConcurrencyConflict``, a database that cannot be reached
      ``StoreUnavailable``. ``read`` returns what ``append`` returned, in seq order.
    - A snapshot is sealed to the run's event at its seq: ``read_snapshot`` returns the newest
      one of ``version`` at or before ``upto_seq`` that still verifies, or None.
    - One holder has a run's lease at a time (``LeaseHeld`` for a second one); a cancel request
      stays until ``clear_cancel``.
    """

    url_for_display: str  # where the log is, with any password masked, for messages

    def append(
        self, run_id: str, events: Sequence[NewEvent], expected_seq: int
    ) -> list[StoredEvent]: ...

    def read(
        self, run_id: str, after_seq: int = 0, upto_seq: int | None = None
    ) -> list[StoredEvent]: ...

    def run_exists(self, run_id: str) -> bool: ...

    def write_snapshot(
        self, run_id: str, seq: int, version: str, state: str, *, keep: int = 2
    ) -> Snapshot: ...

    def read_snapshot(
        self, run_id: str, version: str, upto_seq: int | None = None
    ) -> Snapshot | None: ...

    def acquire_lease(
        self, run_id: str, holder: str, *, host: str, pid: int, attempt: int, ttl_s: float
    ) -> Lease: ...

    def renew_lease(self, run_id: str, holder: str, ttl_s: float) -> None: ...

    def release_lease(self, run_id: str, holder: str) -> None: ...

    def cancel_requested(self, run_id: str) -> bool: ...

    def clear_cancel(self, run_id: str) -> None: ...


__all__ = [
    "BlobRef",
    "BlobStore",
    "Collectives",
    "DatasetStore",
    "EventLog",
    "HubClient",
    "OnePassCustomLoss",
    "SamplingClient",
    "ServedSamplingClient",
    "ServedTrainingClient",
    "ServiceClient",
    "ServingClient",
    "SingleProcess",
    "Tokenizer",
    "TrainingClient",
]
