"""The teacher: a frozen sampling client opened from the run's lineage, next to the student.

Launch resolved the teacher's source into ``ctx.lineage["teacher"]`` (with its sha256 on record)
and ``ctx.lineage_paths["teacher"]`` (where to load it now). Through the factory port the
teacher is a sampling client, whose weights never change after it is made:

- a base model (``teacher_model=…``, or a ``teacher_checkpoint`` that names one): sampled as is;
- an adapter folder (a run's final adapter, or a PEFT folder): on ``teacher_base_model``;
- a training state folder (a run's checkpoint): loaded, weights only, into a training client
  on ``teacher_base_model`` whose sampler snapshot is the teacher.

The teacher must tokenize as the student does, since it scores the student's tokens: a probe
text that encodes differently is refused before anything is trained.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kitchen.errors import ConfigError
from kitchen.ports import SamplingClient, Tokenizer
from kitchen.stage_api import StageContext

PROBE = "What is 12 + 7?\nassistant: 19\n"


def teacher_base(cfg: Any) -> str:
    return str(cfg.teacher_base_model or cfg.model_name)


def open_teacher(ctx: StageContext[Any, Any]) -> tuple[SamplingClient, dict[str, Any]]:
    """The teacher's sampling client and what to log about it."""
    ref = ctx.lineage.get("teacher")
    if ref is None:
        raise ConfigError(
            "no teacher on record: set teacher_checkpoint=run:<id> or teacher_model=<model>"
        )
    path = ctx.lineage_paths["teacher"]
    service, cfg = ctx.ports.training, ctx.config
    out: dict[str, Any] = {"teacher": ref.source, "kind": ref.kind, "sha256": ref.sha256}
    if ref.kind == "base_model":
        client = service.create_sampling_client(base_model=path, seed=cfg.seed)
        out["base_model"] = path
    elif "://" in path or (Path(path) / "adapter_config.json").is_file():
        base = teacher_base(cfg)
        client = service.create_sampling_client(base_model=base, model_path=path, seed=cfg.seed)
        out["base_model"] = base
    else:
        base = teacher_base(cfg)
        trainer = service.create_training_client_from_state(
            path, base_model=base, rank=cfg.lora_rank, seed=cfg.seed, with_optimizer=False
        )
        client = trainer.sampling_client()
        trainer.close()
        out["base_model"] = base
    ctx.on_close(client.close)
    check_same_tokenizer(ctx.resources.tokenizer, client.get_tokenizer(), ref.source)
    return client, out


def check_same_tokenizer(student: Tokenizer, teacher: Tokenizer, source: str) -> None:
    if (
        student.encode(PROBE, add_special_tokens=False)
        != teacher.encode(PROBE, add_special_tokens=False)
        or student.eos_token_id != teacher.eos_token_id
    ):
        raise ConfigError(
            f"teacher {source!r} tokenizes differently from the student: distillation scores "
            "the student's tokens, so pick a teacher on the same tokenizer (teacher_base_model)"
        )
