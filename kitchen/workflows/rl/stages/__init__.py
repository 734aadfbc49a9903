"""The RL workflow's stages: one small module each, ``run(ctx) -> StageResult``."""
