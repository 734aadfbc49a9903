"""The distillation workflows' config: who the teacher is, and how hard to pull towards it.

The teacher is named once, by ``teacher_checkpoint`` (``run:<id>[@<checkpoint>]``, a state or
adapter folder, or a base model) or by ``teacher_model`` (a base model or model folder); launch
resolves either into the run's lineage (role ``teacher``), so ``RunCreated`` records the
weights and their sha256 and every resume hashes them again.
"""

from __future__ import annotations

from pydantic import BaseModel, Field, ValidationInfo, field_validator

from kitchen.workflows.common.config import TrainingConfig
from kitchen.workflows.rl.config import RLConfig


class TeacherKeys(BaseModel):
    teacher_checkpoint: str | None = Field(
        None,
        description="the teacher's weights: run:<id>[@<checkpoint or step>], a state or adapter "
        "folder, or a base model",
    )
    teacher_model: str | None = Field(
        None,
        validate_default=True,
        description="the teacher as a base model (embedded name, model folder or hub id)",
    )
    teacher_base_model: str | None = Field(
        None,
        description="the base model under a teacher adapter (default: model_name); it must "
        "share the student's tokenizer",
    )

    @field_validator("teacher_model")
    @classmethod
    def _one_teacher(cls, value: str | None, info: ValidationInfo) -> str | None:
        named = info.data.get("teacher_checkpoint")
        if named and value:
            raise ValueError("set teacher_checkpoint or teacher_model, not both")
        if not named and not value:
            raise ValueError(
                "no teacher: set teacher_checkpoint=run:<id> (a completed run, e.g. sl_basic) "
                "or teacher_model=<base model or model folder>"
            )
        return value


class OnPolicyConfig(RLConfig, TeacherKeys):
    kl_penalty_coef: float = Field(
        1.0, gt=0.0, description="advantage = -kl_penalty_coef · (log p_student - log p_teacher)"
    )


class OffPolicyConfig(TrainingConfig, TeacherKeys):
    dataset: str = Field(
        "kitchen/arith-rl", description="prompts: rows with a 'prompt' (messages) and 'answer'"
    )
    max_tokens: int = Field(16, ge=1, description="longest teacher completion, in tokens")
    teacher_temperature: float = Field(
        0.0, ge=0.0, description="sampling temperature of the teacher's completions (0: greedy)"
    )
    teacher_samples: int = Field(1, ge=1, description="teacher completions per prompt")
    format_coef: float = Field(
        0.1, ge=0.0, description="evaluation reward term format_coef · (ended with stop − 1)"
    )
