"""LocalServiceClient: the ServiceClient port (the factory) on this machine's torch.

It makes LoRA training clients and sampling clients over the local backend, so a workflow can
hold a policy, a frozen reference and a teacher at once. Device, dtype and the memory settings
(micro-batch budget, gradient checkpointing) are the service's, as a remote service would
choose its own hardware.

It is also a ServingClient (``kitchen serve``): training clients with tinker's LoRA switches
and a budget of their own, and samplers rebuilt from an adapter folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from kitchen.adapters.local_torch import loading, weights_io, worker
from kitchen.adapters.local_torch.architectures import check_model_name
from kitchen.adapters.local_torch.batch import DEFAULT_MAX_TOKENS_PER_MICROBATCH
from kitchen.adapters.local_torch.client import LocalTrainingClient
from kitchen.adapters.local_torch.sampling import LocalSamplingClient
from kitchen.errors import ConfigError
from kitchen.ports import Collectives

if TYPE_CHECKING:  # pragma: no cover
    from kitchen.ports import ServingClient

ATTN = ("q_proj", "k_proj", "v_proj", "o_proj")
MLP = ("gate_proj", "up_proj", "down_proj")


def lora_targets(train_attn: bool, train_mlp: bool) -> tuple[str, ...] | None:
    """tinker's LoRA switches as target modules: None (every linear projection but the output
    head, as every other client here) when both are on."""
    if train_attn and train_mlp:
        return None
    if train_attn:
        return ATTN
    if train_mlp:
        return MLP
    raise ConfigError(
        "train_attn and train_mlp are both off: LoRA on the head alone is not supported"
    )


class LocalServiceClient:
    def __init__(
        self,
        *,
        device: str = "cpu",
        dtype: str = "float32",
        max_tokens_per_microbatch: int | None = DEFAULT_MAX_TOKENS_PER_MICROBATCH,
        gradient_checkpointing: bool = False,
        parallelism: str = "replicate",
    ) -> None:
        self._parallelism = parallelism
        self._device = device
        self._dtype = dtype
        self._budget = max_tokens_per_microbatch
        self._checkpointing = gradient_checkpointing
        self._open: list[Any] = []
        self._bases = loading.SharedBases()  # served models share their base's weights
        self._collectives: Collectives | None = None

    def data_parallel(self, collectives: Collectives) -> None:
        """Train data-parallel over ``collectives``' processes: each training client made from
        now on takes its share of every batch and sums gradients with the other processes'
        (``LocalTrainingClient``'s ``collectives``)."""
        self._collectives = collectives

    def create_lora_training_client(
        self,
        base_model: str,
        rank: int = 32,
        *,
        seed: int | None = None,
        alpha: int | None = None,
        dropout: float = 0.0,
        train_unembed: bool = False,
    ) -> LocalTrainingClient:
        if train_unembed:
            raise ConfigError(
                "the local backend does not adapt the output head: use train_unembed=False"
            )
        client = LocalTrainingClient(
            model_name=base_model,
            lora_rank=rank,
            lora_alpha=alpha,
            lora_dropout=dropout,
            device=self._device,
            dtype=self._dtype,
            seed=0 if seed is None else seed,
            max_tokens_per_microbatch=self._budget,
            gradient_checkpointing=self._checkpointing,
            collectives=self._collectives.split() if self._collectives is not None else None,
            shard_base=self._parallelism == "fsdp",
        )
        self._open.append(client)
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
    ) -> LocalTrainingClient:
        client = self.create_lora_training_client(
            base_model, rank, seed=seed, alpha=alpha, dropout=dropout
        )
        client.load_state(path, with_optimizer=with_optimizer).result()
        return client

    def create_sampling_client(
        self,
        *,
        base_model: str | None = None,
        model_path: str | None = None,
        seed: int = 0,
    ) -> LocalSamplingClient:
        if base_model is None:
            raise ConfigError("create_sampling_client needs base_model on the local backend")
        name = loading.resolve_name(base_model)
        model, tokenizer = worker.run(self._load_frozen, name, model_path)
        client = LocalSamplingClient(model, tokenizer, seed=seed)
        self._open.append(client)
        return client

    def _load_frozen(self, name: str, model_path: str | None) -> tuple[Any, Any]:
        from transformers import AutoModelForCausalLM

        device = loading.pick_device(self._device)
        model = loading.from_pretrained(
            AutoModelForCausalLM, name, dtype=loading.pick_dtype(self._dtype)
        )
        if model_path is not None:
            from peft import PeftModel

            folder = Path(model_path)
            if not (folder / "adapter_config.json").is_file():
                raise ConfigError(
                    f"{model_path} is not a PEFT adapter folder (no adapter_config.json)"
                )
            model = PeftModel.from_pretrained(model, str(folder)).merge_and_unload()
        model = model.to(device)
        model.eval()
        model.requires_grad_(False)
        return model, loading.load_tokenizer(name)

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
    ) -> LocalTrainingClient:
        """Not tracked by ``close()``: the server closes each model's client itself."""
        return LocalTrainingClient(
            model_name=base_model,
            lora_rank=rank,
            target_modules=lora_targets(train_attn, train_mlp),
            seed=seed,
            device=self._device,
            dtype=self._dtype,
            max_tokens_per_microbatch=max_tokens_per_microbatch,
            gradient_checkpointing=self._checkpointing,
            bases=self._bases,
        )

    def create_served_sampling_client(
        self,
        base_model: str,
        rank: int,
        *,
        train_attn: bool = True,
        train_mlp: bool = True,
        adapter_dir: Path | None = None,
    ) -> LocalSamplingClient:
        """The LoRA model a training client of that shape starts as, the adapter's weights
        copied in, and the sampling snapshot a training client would take of it: one path for
        a sampler made now and one rebuilt after a restart. Not tracked by ``close()``: the
        server keeps a few and lets the rest go."""
        targets = lora_targets(train_attn, train_mlp)
        client: LocalSamplingClient = worker.run(
            self._load_served_sampler, base_model, rank, targets, adapter_dir
        )
        return client

    def _load_served_sampler(
        self,
        base_model: str,
        rank: int,
        targets: tuple[str, ...] | None,
        adapter_dir: Path | None,
    ) -> LocalSamplingClient:
        import torch
        from peft import set_peft_model_state_dict
        from safetensors.torch import load_file

        # Loading seeds torch's global generator; the models being trained must not notice.
        saved = torch.get_rng_state()
        try:
            path = loading.resolve_name(base_model)
            lora = loading.lora_settings(rank, None, 0.0, targets)
            device = loading.pick_device(self._device)
            dtype = loading.pick_dtype(self._dtype)
            model = loading.load_lora_model(path, lora, device, dtype, 0, self._bases)
            if adapter_dir is not None:
                set_peft_model_state_dict(
                    model, load_file(str(adapter_dir / "adapter_model.safetensors"))
                )
            snapshot = weights_io.sampling_snapshot(model)
            tokenizer = loading.load_tokenizer(path)
        finally:
            torch.set_rng_state(saved)
        return LocalSamplingClient(snapshot, tokenizer, seed=0)

    def resolve_model(self, base_model: str) -> str:
        return loading.resolve_name(base_model)

    def loaded_bases(self) -> dict[str, int]:
        """The shared bases in memory (by resolved name) and the bytes each takes."""
        loaded: dict[str, int] = worker.run(self._bases.loaded)
        return loaded

    def vocab_size(self, base_model: str) -> int:
        from transformers import AutoConfig

        config = loading.from_pretrained(AutoConfig, loading.resolve_name(base_model))
        return int(config.vocab_size)

    # ------------------------------------------------------------------ the rest of the port

    def get_tokenizer(self, base_model: str) -> Any:
        return loading.load_tokenizer(loading.resolve_name(base_model))

    def verify_checkpoint(self, uri: str, sha256: str) -> bool:
        """Local checkpoints are blob folders, verified by the blob store, never by this."""
        return False

    def describe(self) -> dict[str, str]:
        import torch

        return {
            "backend": "local_torch",
            "device": loading.pick_device(self._device),
            "dtype": self._dtype,
            "torch_threads": str(torch.get_num_threads()),
        }

    def close(self) -> None:
        opened, self._open = self._open, []
        for client in opened:
            client.close()


def create_service(config: Any, home: Path) -> LocalServiceClient:
    """The manifest's factory: device, dtype and the memory settings from the recipe's config
    when it has them, and torch's CPU threads when the config sets ``torch_threads``. A local
    ``model_name`` that holds no model, or one of a family this backend cannot train, is
    refused here, before the run exists."""
    model = getattr(config, "model_name", None)
    if model is not None:
        check_model_name(str(model))
    threads = getattr(config, "torch_threads", None)
    if threads:
        import torch

        torch.set_num_threads(int(threads))
    return LocalServiceClient(
        device=str(getattr(config, "device", "cpu")),
        dtype=str(getattr(config, "dtype", "float32")),
        max_tokens_per_microbatch=getattr(
            config, "max_tokens_per_microbatch", DEFAULT_MAX_TOKENS_PER_MICROBATCH
        ),
        gradient_checkpointing=bool(getattr(config, "gradient_checkpointing", False)),
        parallelism=str(getattr(config, "parallelism", "replicate")),
    )


if TYPE_CHECKING:  # mypy holds the class to the port kitchen serve is built on
    _serves: type[ServingClient] = LocalServiceClient
