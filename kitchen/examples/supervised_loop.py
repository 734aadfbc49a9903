"""The whole supervised loop on one page, without the engine.

This is what ``sl_basic`` does, minus the event log, checkpoints, resume and telemetry: read
chat rows, render them into Datums, and for each batch submit ``forward_backward`` and
``optim_step`` and read the loss. Use it to learn the moving parts; use ``kitchen run sl_basic``
for runs you need to resume, audit or replay.

    python -m kitchen.examples.supervised_loop            # about a minute on two CPU cores
"""

from __future__ import annotations

import random

from kitchen.adapters.hf_datasets import HFDatasetStore
from kitchen.adapters.local_torch import create_training_client
from kitchen.renderers import TrainOnWhat, datum_from_model_input_weights, get_renderer
from kitchen.types import AdamParams


def main(
    model_name: str = "kitchen/tiny",
    dataset: str = "kitchen/arith-chat",
    learning_rate: float = 3e-3,
    batch_size: int = 32,
    max_steps: int = 60,
    lora_rank: int = 16,
    max_length: int = 128,
    seed: int = 0,
) -> None:
    rows = list(HFDatasetStore().load(dataset, "train"))
    client = create_training_client(model_name=model_name, lora_rank=lora_rank, seed=seed)
    renderer = get_renderer("role_colon", client.get_tokenizer())
    data = []
    for row in rows:
        tokens, weights = renderer.build_supervised_example(
            row["messages"], TrainOnWhat.LAST_ASSISTANT_MESSAGE
        )
        data.append(datum_from_model_input_weights(tokens, weights, max_length))

    order = list(range(len(data)))
    random.Random(f"{seed}:0").shuffle(order)
    steps = min(max_steps, len(data) // batch_size)
    for step in range(steps):
        batch = [data[i] for i in order[step * batch_size : (step + 1) * batch_size]]
        lr = learning_rate * (1 - step / steps)  # linear decay
        fb = client.forward_backward(batch, "cross_entropy")  # futures: both are queued at once
        opt = client.optim_step(AdamParams(learning_rate=lr))
        loss_sum = fb.result().metrics["loss:sum"]
        opt.result()
        n_loss = sum(sum(d.loss_fn_inputs["weights"].data) for d in batch)
        print(f"step {step + 1}/{steps}  train_mean_nll {loss_sum / n_loss:.4f}  lr {lr:.2e}")
    client.close()


if __name__ == "__main__":
    main()
