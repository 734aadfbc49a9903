"""The config keys every training recipe shares, with tinker-cookbook's names.

A workflow extends :class:`TrainingConfig` with its own keys and a recipe sets its defaults
by subclassing that; ``kitchen run RECIPE key=value`` validates against the recipe's class.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from kitchen import config as kconfig


class TrainingConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    model_name: str = Field("kitchen/tiny", description="embedded name, local folder or hub id")
    load_checkpoint_path: str | None = kconfig.added(
        None,
        absent=None,
        description="start from these weights: run:<id>[@<checkpoint or step>], a state or "
        "adapter folder, or a base model",
    )
    dataset: str = Field(
        "kitchen/arith-chat", description="embedded name, .jsonl/.json/.parquet/.csv, or hub id"
    )
    test_size: int = Field(
        64, ge=1, description="held-out rows taken from train when there is no test split"
    )
    renderer_name: str = "role_colon"
    max_length: int = Field(128, ge=8)

    lora_rank: int = Field(16, ge=1)
    lora_alpha: int | None = Field(None, ge=1, description="default: 32, as tinker")
    lora_dropout: float = Field(0.0, ge=0.0, lt=1.0)

    learning_rate: float = Field(3e-3, gt=0.0)
    lr_schedule: Literal["constant", "linear", "cosine"] = "linear"
    adam_beta1: float = Field(0.9, ge=0.0, lt=1.0)
    adam_beta2: float = Field(0.95, ge=0.0, lt=1.0)
    adam_eps: float = Field(1e-8, gt=0.0)
    weight_decay: float = Field(0.0, ge=0.0)
    grad_clip_norm: float = Field(0.0, ge=0.0, description="0 = no clipping")
    num_epochs: int = Field(1, ge=1)
    batch_size: int = Field(32, ge=1)
    max_steps: int | None = Field(
        60, ge=1, description="stop after this many steps (null: all epochs)"
    )
    seed: int = 0

    save_every: int = Field(20, ge=0, description="checkpoint every N steps (0: only at the end)")
    keep_checkpoints: int = kconfig.operating(
        3, ge=1, description="live checkpoints kept; older ones are deleted once a newer is saved"
    )
    eval_every: int = Field(
        0, ge=0, description="evaluate every N steps (0: only at start and end)"
    )
    eval_examples: int = Field(64, ge=1)
    eval_max_tokens: int = Field(16, ge=1)

    # Operating settings: how an attempt executes, not what the run computes (docs/config.md).
    pipeline: bool = kconfig.operating(True, description="submit step N+1 before awaiting step N")
    device: Literal["auto", "cpu", "cuda"] = kconfig.operating(
        "cpu", moves_floats=True, description="where the local backend trains (auto: cuda if any)"
    )
    torch_threads: int | None = kconfig.operating(
        None,
        moves_floats=True,
        absent=None,
        ge=1,
        description="torch's CPU threads (null: torch's default: OMP_NUM_THREADS or the cores)",
    )
    max_tokens_per_microbatch: int | None = kconfig.operating(
        16384,  # the local backend's DEFAULT_MAX_TOKENS_PER_MICROBATCH
        moves_floats=True,
        absent=None,
        ge=1,
        description="padded tokens per micro-batch of a forward/backward (null: one batch a "
        "call); lower it when a step runs out of memory (docs/backend.md)",
    )
    gradient_checkpointing: bool = kconfig.operating(
        False,
        absent=False,
        description="recompute activations in the backward: less memory, about 1/3 more compute",
    )
    parallelism: Literal["replicate", "fsdp"] = kconfig.operating(
        "replicate",
        moves_floats=True,
        absent="replicate",
        description="on several processes (torchrun): replicate the whole model on each, or "
        "shard the frozen base with FSDP2 for a model that does not fit one device "
        "(docs/distributed.md)",
    )
    loggers: list[Literal["mlflow", "tensorboard", "wandb"]] = kconfig.operating(
        default_factory=list,
        absent=[],
        description="trackers fed from the run's log: mlflow (MLFLOW_TRACKING_URI), "
        "tensorboard (a log folder under the run's folder), wandb (WANDB_PROJECT, WANDB_MODE); "
        "each its own extra; several comma-separated",
    )
    dtype: Literal["float32", "bfloat16"] = "float32"
    adapters: dict[str, str] = Field(
        default_factory=dict,
        description="override the recipe's adapters manifest, e.g. adapters.training=NAME",
    )
    hf_token: SecretStr | None = Field(
        None, description="read from HF_TOKEN when unset; never logged"
    )

    @field_validator("loggers", mode="before")
    @classmethod
    def _loggers_as_list(cls, value: object) -> object:
        """``loggers=tensorboard`` or ``loggers=a,b`` on the command line: a list."""
        if isinstance(value, str):
            return [part.strip() for part in value.strip("[]").split(",") if part.strip()]
        return value


# Keys older versions recorded under another name: kconfig.restore moves them.
RENAMED = {"training_adapter": "adapters.training", "dataset_adapter": "adapters.datasets"}
