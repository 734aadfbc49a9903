"""The teacher: a frozen sampling client opened from the run's lineage, next to the student.

Launch resolved the teacher's source into ``ctx.lineage["teacher"]`` (with its sha256 on record)
and ``ctx.lineage_paths["teacher"]`` (where to load it now). Through the factory port the
teacher is a sampling client, whose weights never change after it is made:

- a base model (``teacher_model=…``, or a ``teacher_checkpoint`` that names one): sampled as is;
- an adapter folder (a run's final adapter, or a PEFT folder): on ``teacher_base_model``;
- a training state folder (a run's checkpoint): loaded, weights only, into a training client
  on ``teacher_base_model`` whose sampler snapshot is the teacher.

The teacher must tokenize as the student does, since it scores the student's tokens: the
workflows' pre-flight (:func:`check_teacher`) refuses a teacher whose tokenizer encodes a probe
text differently, in one line, before the run exists.
"""

from __future__ import annotations

from typing import Any

from kitchen.errors import ConfigError
from kitchen.ports import SamplingClient, Tokenizer
from kitchen.stage_api import Preflight, StageContext
from kitchen.workflows.common.preflight import check_training
from kitchen.workflows.common.session import base_model, open_frozen

PROBE = "What is 12 + 7?\nassistant: 19\n"


def teacher_base(cfg: Any) -> str:
    return str(cfg.teacher_base_model or cfg.model_name)


def open_teacher(ctx: StageContext[Any, Any]) -> tuple[SamplingClient, dict[str, Any]]:
    """The teacher's sampling client and what to log about it."""
    if ctx.lineage.get("teacher") is None:
        raise ConfigError(
            "no teacher on record: set teacher_checkpoint=run:<id> or teacher_model=<model>"
        )
    return open_frozen(ctx, "teacher", teacher_base(ctx.config))


def check_teacher(pre: Preflight[Any]) -> None:
    """The distillation workflows' pre-flight: the training checks, then the teacher's
    tokenizer against the student's (each loaded alone, no weights)."""
    check_training(pre)
    ref = pre.lineage.get("teacher")
    if ref is None:
        return
    path = pre.lineage_paths["teacher"]
    service = pre.ports.training
    teacher_model = path if ref.kind == "base_model" else teacher_base(pre.config)
    check_same_tokenizer(
        service.get_tokenizer(base_model(pre)), service.get_tokenizer(teacher_model), ref.source
    )


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
