"""The supervised workflow's config: the shared training keys plus what to train on."""

from __future__ import annotations

from typing import Literal

from kitchen.workflows.common.config import TrainingConfig


class SupervisedConfig(TrainingConfig):
    train_on_what: Literal[
        "last_assistant_message", "all_assistant_messages", "all_messages", "all_tokens"
    ] = "last_assistant_message"
