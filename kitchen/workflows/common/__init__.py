"""What the training workflows share: the config keys every recipe has, the resources of a
LoRA training loop, the data cursor and plan, and the stages that end a run (checkpoint,
final weights, cleanup)."""
