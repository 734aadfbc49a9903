"""rl_multiturn: reinforcement learning on multi-turn episodes, on the embedded default.

With no arguments it trains a fresh LoRA on the embedded tiny model (``kitchen/tiny``) on the
embedded problems (``kitchen/arith-rl``) through the ``feedback`` env: the policy answers,
hears ``Too high.`` / ``Too low.`` / ``Wrong.`` and ``Try again.`` after a wrong answer, and
answers again, up to ``max_turns`` turns. Only the sampled tokens of each turn carry the
episode's advantage (the feedback turns are observation, masked). Held-out success within the
turns, greedy (``test/accuracy``), is measured before, every ``eval_every`` steps and after.
See ``docs/rl.md`` ("Multi-turn episodes").
"""

from __future__ import annotations

from pydantic import Field

from kitchen.spec import Recipe
from kitchen.workflows.common.config import RENAMED
from kitchen.workflows.rl.config import MultiTurnConfig


class Config(MultiTurnConfig):
    """Defaults sized to finish within two and a half minutes on 2 CPU cores: 50 steps of 8
    problems × 8 episodes of at most 2 turns, learning rate 1e-3 decaying linearly, evaluation
    at the start and the end (held-out success 14/64 → 19/64, see README)."""

    env: str = Field("feedback", description="the env factory (default: feedback)")
    learning_rate: float = Field(1e-3, gt=0.0)
    num_epochs: int = Field(1, ge=1)
    max_steps: int | None = Field(50, ge=1, description="stop after this many steps")
    max_turns: int = Field(2, ge=1, description="turns an episode may take at most")
    eval_every: int = Field(0, ge=0, description="evaluate every N steps (0: start and end)")
    save_every: int = Field(25, ge=0, description="checkpoint every N steps (0: only at the end)")


RECIPE = Recipe(
    name="rl_multiturn",
    workflow="rl",
    config=Config,
    description="RL on multi-turn episodes (default: embedded tiny model, answer with feedback)",
    adapters={"training": "local_torch", "datasets": "hf_datasets", "blobs": "local"},
    renamed=RENAMED,
)
__all__ = ["RECIPE", "Config"]
