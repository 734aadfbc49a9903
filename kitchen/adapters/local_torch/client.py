"""LocalTrainingClient: the TrainingClient port on a transformers causal LM with a peft LoRA.

Every operation is queued on the process's one torch thread (``worker``) and runs in
submission order; each method
returns its future at once. That is what lets a training loop submit step N+1's
forward_backward before it reads step N's result (tinker's submit-ahead), and it means the
model, the optimizer and the RNGs are only ever touched by that one thread.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from kitchen.adapters.local_torch import batch as batching
from kitchen.adapters.local_torch import data_parallel as dp
from kitchen.adapters.local_torch import loading, memory, optim, state, weights_io, worker
from kitchen.adapters.local_torch.decode import prompt_logprobs
from kitchen.adapters.local_torch.losses import builtin
from kitchen.adapters.local_torch.sampling import LocalSamplingClient
from kitchen.engine import preemption
from kitchen.errors import ConfigError, TrainingDiverged
from kitchen.ports import Collectives
from kitchen.types import (
    AdamParams,
    CustomLossFn,
    Datum,
    ForwardBackwardOutput,
    Future,
    LossFnType,
    ModelInput,
    OptimStepResponse,
    SavedState,
    TensorData,
)

if TYPE_CHECKING:  # pragma: no cover
    import torch

R = TypeVar("R")


class LocalTrainingClient:
    """LoRA training on this machine's CPU or GPU, deterministic on CPU.

    ``lora_alpha`` defaults to 32 whatever the rank, as in tinker, so its learning-rate
    recipes carry over; ``target_modules=None`` adapts every linear projection except the
    output head.
    """

    def __init__(
        self,
        *,
        model_name: str,
        lora_rank: int = 16,
        lora_alpha: int | None = None,
        lora_dropout: float = 0.0,
        target_modules: Sequence[str] | None = None,
        device: str = "auto",
        dtype: str = "float32",
        seed: int = 0,
        max_tokens_per_microbatch: int | None = batching.DEFAULT_MAX_TOKENS_PER_MICROBATCH,
        gradient_checkpointing: bool = False,
        collectives: Collectives | None = None,
        shard_base: bool = False,
        bases: loading.SharedBases | None = None,
    ) -> None:
        # On several processes (kitchen.adapters.local_torch.data_parallel): this client's
        # own channel, used only from its worker thread.
        self._dp = collectives if collectives is not None and collectives.world_size > 1 else None
        # samplers share their calls out on a channel of their own (used from the caller's thread)
        self._dp_sampling = self._dp.split() if self._dp is not None else None
        # FSDP2 shards the frozen base over this client's channel; one process has no one to
        # share it with (data_parallel.shard_base)
        self._sharded = shard_base and self._dp is not None
        self._lora = loading.lora_settings(lora_rank, lora_alpha, lora_dropout, target_modules)
        self._device = loading.pick_device(device)
        torch_dtype = loading.pick_dtype(dtype)
        self._torch_dtype = torch_dtype
        if max_tokens_per_microbatch is not None and max_tokens_per_microbatch < 1:
            raise ConfigError(
                f"max_tokens_per_microbatch must be at least 1 (or None: one batch a call), "
                f"got {max_tokens_per_microbatch}"
            )
        self._budget = max_tokens_per_microbatch
        self._checkpointing = gradient_checkpointing
        self._model_name = model_name
        self._seed = seed
        self._step = 0
        # a base shared with the other clients made on it (kitchen serve); never sharded
        self._bases = None if self._sharded else bases
        self._executor = worker.Lane()
        worker.run(
            memory.guarded(self._load, memory.LOAD_HINT),
            loading.resolve_name(model_name),
            torch_dtype,
        )

    def _load(self, path: str, torch_dtype: Any) -> None:
        """On the torch thread, like every other torch operation (see ``worker``)."""
        loading.seed_everything(self._seed, self._device)
        self._model = loading.load_lora_model(
            path, self._lora, self._device, torch_dtype, self._seed, self._bases
        )
        if self._checkpointing:
            loading.enable_checkpointing(self._model)
        if self._sharded:
            assert self._dp is not None
            dp.shard_base(self._model, self._dp, self._device)
        self._tokenizer = loading.load_tokenizer(path)
        self._params = {n: p for n, p in self._model.named_parameters() if p.requires_grad}
        self._optimizer = optim.new_optimizer(self._params.values())
        self._vocab = int(self._model.get_input_embeddings().num_embeddings)

    # ------------------------------------------------------------------ the port

    @property
    def step(self) -> int:
        return self._step

    def get_tokenizer(self) -> Any:
        return self._tokenizer

    def forward_backward(
        self,
        data: Sequence[Datum],
        loss_fn: LossFnType = "cross_entropy",
        loss_fn_config: Mapping[str, float] | None = None,
    ) -> Future[ForwardBackwardOutput]:
        config = dict(loss_fn_config or {})
        return self._submit(self._forward_backward, list(data), loss_fn, config)

    def forward_backward_custom(
        self, data: Sequence[Datum], loss_fn: CustomLossFn
    ) -> Future[ForwardBackwardOutput]:
        return self._submit(self._forward_backward_custom, list(data), loss_fn)

    def custom_loss_in_one_pass(self, data: Sequence[Datum]) -> bool:
        """Whether ``forward_backward_custom(data, …)`` takes the loss's gradient on the very
        forward pass its backward uses (``OnePassCustomLoss``): on one process, when the call
        fits one micro-batch. Reads only the data's lengths and the budget, so it never waits."""
        if self._dp is not None:
            return False
        try:
            return len(self._plan(list(data))) == 1
        except ConfigError:  # empty data: the call itself says what is wrong
            return False

    def forward(
        self,
        data: Sequence[Datum],
        loss_fn: LossFnType = "cross_entropy",
        loss_fn_config: Mapping[str, float] | None = None,
    ) -> Future[ForwardBackwardOutput]:
        """``forward_backward`` without the backward (tinker's ``forward``): the same loss and
        logprobs, and no gradient accumulated. ``loss_fn_config`` as for forward_backward
        (``kitchen serve`` passes ppo's clip thresholds through)."""
        config = dict(loss_fn_config or {})
        return self._submit(self._forward, list(data), loss_fn, config)

    def optim_step(self, adam_params: AdamParams) -> Future[OptimStepResponse]:
        return self._submit(self._optim_step, adam_params)

    def save_state(self, path: str | Path) -> Future[SavedState]:
        return self._submit(self._save_state, Path(path))

    def load_state(self, path: str | Path, with_optimizer: bool = True) -> Future[SavedState]:
        """Restore a saved state; without the optimizer, AdamW starts afresh on those weights."""
        return self._submit(self._load_state, Path(path), with_optimizer)

    def save_weights_for_sampler(self, path: str | Path) -> Future[str]:
        return self._submit(self._write, weights_io.save_adapter, Path(path))

    def export_merged(self, path: str | Path) -> Future[str]:
        """Full weights with the adapter merged in, plus the tokenizer: a plain HF model folder."""
        return self._submit(self._write, self._export_merged, Path(path))

    def sampling_client(self) -> LocalSamplingClient:
        """Snapshot the weights once every operation submitted so far has run (this waits)."""
        take = self._sharded_snapshot if self._sharded else weights_io.sampling_snapshot
        snapshot = self._submit(take, self._model).result()
        sampler = LocalSamplingClient(snapshot, self._tokenizer, seed=self._seed + self._step)
        if self._dp_sampling is not None:
            return dp.SplitSampler(sampler, self._dp_sampling)  # type: ignore[return-value]
        return sampler

    def compute_logprobs(self, prompt: ModelInput) -> Future[list[float | None]]:
        return self._submit(self._compute_logprobs, prompt.to_ints())

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Finish queued operations and stop the worker thread."""
        self._executor.shutdown(wait=True)

    def __enter__(self) -> LocalTrainingClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ worker side

    def _submit(self, fn: Callable[..., R], *args: Any) -> Future[R]:
        try:
            return self._executor.submit(memory.guarded(fn, self._memory_hint), *args)
        except RuntimeError as exc:
            raise ConfigError("this training client is closed: create a new one") from exc

    def _memory_hint(self) -> str:
        now = "one batch a call" if self._budget is None else str(self._budget)
        checkpointing = "" if self._checkpointing else " or set gradient_checkpointing=true"
        return f"lower max_tokens_per_microbatch (now {now}){checkpointing}"

    def _forward_backward(
        self, data: list[Datum], loss_fn: str, config: dict[str, float]
    ) -> ForwardBackwardOutput:
        batching.lengths_of(data)  # an empty call is refused; a process's empty share is not
        if self._dp is not None:
            return dp.split_call(
                self._dp, data, lambda share: self._forward_backward_here(share, loss_fn, config)
            )
        return self._forward_backward_here(data, loss_fn, config)

    def _forward_backward_here(
        self, data: list[Datum], loss_fn: str, config: dict[str, float]
    ) -> ForwardBackwardOutput:
        """One backward per micro-batch; gradients accumulate, the loss is their sum. A call
        that fails part-way leaves the gradients as they were before it."""
        loss = builtin(loss_fn, config)
        outputs: list[dict[str, TensorData]] = [{} for _ in data]
        total = 0.0
        groups = self._plan(data)
        with self._keeping_gradients():
            for group in groups:
                packed = self._pack(data, group, loss.inputs)
                logprobs = batching.target_logprobs(self._train_mode(), packed, self._vocab)
                total += self._backward(loss.fn(logprobs, packed.inputs, config))
                self._place(outputs, group, logprobs, packed)
            self._even_out(len(groups), backward=True)
        return ForwardBackwardOutput(tuple(outputs), {"loss:sum": total})

    def _forward(
        self, data: list[Datum], loss_fn: str, config: dict[str, float] | None = None
    ) -> ForwardBackwardOutput:
        batching.lengths_of(data)
        if self._dp is not None:
            return dp.split_call(
                self._dp, data, lambda share: self._forward_here(share, loss_fn, config)
            )
        return self._forward_here(data, loss_fn, config)

    def _forward_here(
        self, data: list[Datum], loss_fn: str, config: dict[str, float] | None = None
    ) -> ForwardBackwardOutput:
        """The pass ``_forward_backward`` takes, in the same (training) mode so a client-side
        loss is linearised where the backward will be taken; no graph is kept."""
        import torch

        config = config or {}
        loss = builtin(loss_fn, config)
        outputs: list[dict[str, TensorData]] = [{} for _ in data]
        total = 0.0
        groups = self._plan(data)
        with torch.no_grad():
            for group in groups:
                packed = self._pack(data, group, loss.inputs)
                logprobs = batching.target_logprobs(self._train_mode(), packed, self._vocab)
                total += float(loss.fn(logprobs, packed.inputs, config))
                self._place(outputs, group, logprobs, packed)
            self._even_out(len(groups), backward=False)
        return ForwardBackwardOutput(tuple(outputs), {"loss:sum": total})

    def _forward_backward_custom(
        self, data: list[Datum], loss_fn: CustomLossFn
    ) -> ForwardBackwardOutput:
        """One batch: ``loss_fn`` on log-probs that carry the graph. Several micro-batches: two
        passes, so no graph outlives its micro-batch (``_custom_two_pass``)."""
        if self._dp is not None:
            raise ConfigError(
                "forward_backward_custom runs on one process; on several, take the loss's "
                "gradient client-side (forward, then forward_backward with it as weights)"
            )
        groups = self._plan(data)
        if len(groups) > 1:
            return self._custom_two_pass(data, loss_fn, groups)
        packed = self._pack(data, groups[0], ("target_tokens",))
        logprobs = batching.target_logprobs(self._train_mode(), packed, self._vocab)
        total, metrics = loss_fn(data, batching.per_datum(logprobs, packed.lengths))
        _check_scalar(total)
        with self._keeping_gradients():
            value = self._backward(total)
        out = {"loss:sum": value, **{k: float(v) for k, v in metrics.items()}}
        return ForwardBackwardOutput(batching.to_outputs(logprobs, packed.lengths), out)

    def _custom_two_pass(
        self, data: list[Datum], loss_fn: CustomLossFn, groups: list[list[int]]
    ) -> ForwardBackwardOutput:
        """First pass without a graph gives every datum's log-probs; the loss and its gradient
        with respect to them are taken on detached copies; the second pass recomputes each
        micro-batch with a graph and back-propagates that gradient through it. The RNG is
        rewound between the passes, so dropout draws the same masks in both."""
        import torch

        outputs: list[dict[str, TensorData]] = [{} for _ in data]
        leaves: list[torch.Tensor] = [torch.empty(0) for _ in data]
        rng = loading.capture_rng(self._device)
        with torch.no_grad():
            for group in groups:
                packed = self._pack(data, group, ("target_tokens",))
                logprobs = batching.target_logprobs(self._train_mode(), packed, self._vocab)
                rows = batching.per_datum(logprobs, packed.lengths)
                for i, values in zip(group, rows, strict=True):
                    leaves[i] = values.detach().clone().requires_grad_(True)
                self._place(outputs, group, logprobs, packed)
        total, metrics = loss_fn(data, leaves)
        _check_scalar(total)
        value = self._checked(total)
        grads = torch.autograd.grad(total, leaves, allow_unused=True)
        loading.restore_rng(rng, self._device)
        with self._keeping_gradients():
            for group in groups:
                packed = self._pack(data, group, ("target_tokens",))
                logprobs = batching.target_logprobs(self._train_mode(), packed, self._vocab)
                upstream = torch.zeros_like(logprobs)
                for row, position in enumerate(group):
                    if grads[position] is not None:
                        upstream[row, : packed.lengths[row]] = grads[position]
                logprobs.backward(upstream)
        out = {"loss:sum": value, **{k: float(v) for k, v in metrics.items()}}
        return ForwardBackwardOutput(tuple(outputs), out)

    def _plan(self, data: list[Datum]) -> list[list[int]]:
        if not data:
            return []
        return batching.plan(batching.lengths_of(data), self._budget)

    def _even_out(self, passes: int, *, backward: bool) -> None:
        """With a sharded base every process must make as many passes as the others (each
        pass gathers the base's shards from all of them): one with fewer micro-batches makes
        idle passes that add nothing."""
        if not self._sharded:
            return
        assert self._dp is not None
        most = max(self._dp.all_gather(passes))
        for _ in range(most - passes):
            dp.idle_pass(self._train_mode(), self._device, backward=backward)

    def _pack(self, data: list[Datum], group: list[int], keys: Sequence[str]) -> batching.Batch:
        if len(group) == len(data):  # one batch, in the caller's order
            return batching.pack(data, keys, self._vocab, self._device)
        chosen = [data[i] for i in group]
        return batching.pack(chosen, keys, self._vocab, self._device, positions=group)

    @staticmethod
    def _place(
        outputs: list[dict[str, TensorData]],
        group: list[int],
        logprobs: torch.Tensor,
        packed: batching.Batch,
    ) -> None:
        for i, out in zip(group, batching.to_outputs(logprobs, packed.lengths), strict=True):
            outputs[i] = out

    @contextmanager
    def _keeping_gradients(self) -> Iterator[None]:
        """Restore the gradients accumulated before a backward that fails part-way (a loss
        that diverges in a later micro-batch, out of memory): a failed call adds nothing."""
        before = {n: p.grad.clone() for n, p in self._params.items() if p.grad is not None}
        try:
            yield
        except BaseException:
            for name, p in self._params.items():
                p.grad = before.get(name)
            raise

    def _train_mode(self) -> torch.nn.Module:
        """Switch to training mode only when needed: ``train()`` walks every module (~1 ms)."""
        if not self._model.training:
            self._model.train()
        return self._model

    def _backward(self, loss: torch.Tensor) -> float:
        value = self._checked(loss)
        loss.backward()
        return value

    def _checked(self, loss: torch.Tensor) -> float:
        value = float(loss.detach())
        if value != value or value in (float("inf"), float("-inf")):
            raise TrainingDiverged(
                f"loss is {value} at step {self._step}: lower the learning rate or look for "
                "NaN/inf in the weights or advantages"
            )
        return value

    def _optim_step(self, adam: AdamParams) -> OptimStepResponse:
        optim.set_hyperparams(self._optimizer, adam)
        params = list(self._params.values())
        if self._dp is not None:
            dp.sum_gradients(self._dp, params)
        norm = optim.grad_norm(params)
        if norm != norm or norm == float("inf"):
            self._optimizer.zero_grad(set_to_none=True)
            raise TrainingDiverged(
                f"gradient norm is {norm} at step {self._step}: lower the learning rate or "
                "set grad_clip_norm"
            )
        optim.clip(params, norm, adam.grad_clip_norm)
        self._optimizer.step()
        self._optimizer.zero_grad(set_to_none=True)
        self._step += 1
        return OptimStepResponse({"grad_norm": norm, "learning_rate": adam.learning_rate})

    def _sharded_snapshot(self, model: Any) -> Any:
        """A whole copy of the model for sampling while the base is sharded: the frozen base
        from its files again (it never changes) with the current LoRA weights merged in. It
        runs no collective, so each process samples its own share of the calls on it."""
        rng = loading.capture_rng(self._device)
        try:
            copy = loading.load_lora_model(
                loading.resolve_name(self._model_name),
                self._lora,
                self._device,
                self._torch_dtype,
                self._seed,
            )
        finally:
            loading.restore_rng(rng, self._device)
        mine = dict(copy.named_parameters())
        for name, p in self._params.items():
            mine[name].data.copy_(p.detach())
        return weights_io.sampling_snapshot(copy)

    def _save_state(self, folder: Path) -> SavedState:
        header = {"step": self._step, "model": self._model_name, "lora": self._lora.as_json()}
        state.save(folder, self._params, self._optimizer, header)
        if self._dp is not None and not preemption.saving_now():
            dp.check_same_state(self._dp, folder, self._step)
        return SavedState(str(folder), self._step)

    def _load_state(self, folder: Path, with_optimizer: bool) -> SavedState:
        if self._dp is None:
            return self._load_state_here(folder, with_optimizer)
        local, scratch = dp.from_rank0(self._dp, folder)
        try:
            return self._load_state_here(local, with_optimizer)
        finally:
            if scratch is not None:
                scratch.cleanup()

    def _load_state_here(self, folder: Path, with_optimizer: bool) -> SavedState:
        if (folder / "adapter_config.json").is_file():
            return self._load_adapter(folder)
        header = state.read_header(folder)
        if header.get("lora") != self._lora.as_json():
            raise ConfigError(
                f"{folder} was saved with LoRA {header.get('lora')}, this client has "
                f"{self._lora.as_json()}: create the client with the same LoRA settings"
            )
        state.load_weights(folder, self._params)
        self._optimizer = optim.new_optimizer(self._params.values())
        self._optimizer.zero_grad(set_to_none=True)
        if with_optimizer:
            state.load_optimizer(folder, self._params, self._optimizer, header["optimizer"])
        state.restore_rng(folder, header["rng"])
        self._step = int(header["step"])
        return SavedState(str(folder), self._step)

    def _load_adapter(self, folder: Path) -> SavedState:
        """Weights of a PEFT adapter folder; the optimizer and step start afresh."""
        weights_io.load_adapter(self._model, folder)
        self._optimizer = optim.new_optimizer(self._params.values())
        self._optimizer.zero_grad(set_to_none=True)
        self._step = 0
        return SavedState(str(folder), 0)

    def _write(self, writer: Callable[[Any, Path], None], folder: Path) -> str:
        writer(self._model, folder)
        return str(folder)

    def _export_merged(self, model: Any, folder: Path) -> None:
        weights_io.export_merged(model, self._tokenizer, folder)

    def _compute_logprobs(self, tokens: list[int]) -> list[float | None]:
        """Scored without dropout; the next forward_backward switches back to training mode."""
        if self._model.training:
            self._model.eval()
        return prompt_logprobs(self._model, tokens, self._vocab)


def _check_scalar(total: torch.Tensor) -> None:
    if total.dim() != 0:
        raise ConfigError("a custom loss must return a scalar tensor: sum or mean it")
