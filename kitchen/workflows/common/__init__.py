"""What the training workflows share: the skeleton they are built in (``builder``), the config
keys every recipe has, the resources of a LoRA training loop, the data cursor and plan, the
loop's predicates, and the stages every one of them runs alike (``init_session``,
``init_tokenizer``, ``set_epoch``, ``optim_step``, ``log_step_metrics``, ``log_epoch_metrics``,
the checkpoint, final weights and cleanup)."""
