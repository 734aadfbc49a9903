"""The distillation workflows' own stages: one small module each, ``run(ctx) -> StageResult``."""
