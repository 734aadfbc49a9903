"""The training loop of the reproducibility tests, and the child process that resumes it.

Run as a script it plays a worker after a crash: a FRESH client with a different seed loads
a saved state and trains on. Everything that decides the outcome (weights, moments, step,
RNG for LoRA dropout) must therefore come from the state, not from the seed.

    python resume_child.py MODEL_DIR STATE_DIR FIRST_STEP LAST_STEP ADAPTER_OUT
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from kitchen.types import AdamParams, Datum, ModelInput, TensorData

TEXTS = (
    "The quick brown fox jumps over the lazy dog.",
    "Pack my box with five dozen liquor jugs!",
    "kitchen: runs that are never lost and never trained twice",
    "0123456789 + 9876543210 = 9999999999",
)
TOTAL_STEPS = 20
SETTINGS = {"lora_rank": 4, "lora_dropout": 0.1, "device": "cpu"}


def batch(client: Any, step: int) -> list[Datum]:
    """Two texts per step, of different lengths, rotating through TEXTS."""
    tokenizer = client.get_tokenizer()
    data = []
    for text in (TEXTS[step % 4], TEXTS[(step + 1) % 4]):
        tokens = tokenizer.encode(text, add_special_tokens=False)
        inputs = {
            "target_tokens": TensorData.from_list(tokens[1:], "int64"),
            "weights": TensorData.from_list([1.0] * (len(tokens) - 1), "float32"),
        }
        data.append(Datum(ModelInput.from_ints(tokens[:-1]), inputs))
    return data


def adam(step: int) -> AdamParams:
    """A linear decay, so the learning rate changes at every step."""
    return AdamParams(learning_rate=1e-2 * (1 - step / TOTAL_STEPS), grad_clip_norm=1.0)


def train(client: Any, first: int, last: int) -> None:
    """Submit-ahead loop: queue every step, then wait for the last one."""
    futures = []
    for step in range(first, last):
        futures.append(client.forward_backward(batch(client, step)))
        futures.append(client.optim_step(adam(step)))
    for future in futures:
        future.result()


def main(model_dir: str, state_dir: str, first: str, last: str, out: str) -> None:
    from kitchen.adapters.local_torch import create_training_client

    with create_training_client(model_name=model_dir, seed=12345, **SETTINGS) as client:
        assert client.load_state(Path(state_dir)).result().step == int(first)
        train(client, int(first), int(last))
        client.save_weights_for_sampler(Path(out)).result()


if __name__ == "__main__":
    main(*sys.argv[1:])
