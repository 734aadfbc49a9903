"""Several models trained and sampled at once, run two ways: through the unmodified tinker SDK
against ``kitchen serve`` (``served``: this process drives the models it is given, their
steps interleaved), and in-process on the local backend, one model alone at a time
(``inprocess``). Both write {model index: results} as JSON, so a test compares them.

    python many_script.py served OUT.json BASE_A BASE_B INDEX...
    python many_script.py inprocess OUT.json BASE_A BASE_B INDEX...

Model i trains on base A when i is even, B when odd, with seed 100 + i and its own text.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

RANK = 4
STEPS = 4
SAMPLE_AT = 2  # after this many steps, a seeded sample from the weights so far
ADAM = {
    "learning_rate": 5e-3,
    "beta1": 0.9,
    "beta2": 0.95,
    "eps": 1e-12,
    "weight_decay": 0.0,
    "grad_clip_norm": 0.0,
}
WORDS = ["apple", "river", "stone", "cloud", "ember", "maple", "otter", "prism"]


def text(i: int) -> str:
    return f"What is {i}+{i + 3}? {2 * i + 3} {WORDS[i % len(WORDS)]}"


def base_of(i: int, bases: list[str]) -> str:
    return bases[i % 2]


def served(out: Path, bases: list[str], indices: list[int]) -> None:
    import tinker
    from tinker import types

    sc = tinker.ServiceClient()
    clients = {
        i: sc.create_lora_training_client(base_model=base_of(i, bases), rank=RANK, seed=100 + i)
        for i in indices
    }
    tok = {i: c.get_tokenizer() for i, c in clients.items()}
    res: dict[int, dict[str, Any]] = {i: {"losses": [], "grad_norms": []} for i in indices}

    def datum(i: int) -> Any:
        ids = tok[i].encode(text(i))
        return types.Datum(
            model_input=types.ModelInput.from_ints(ids[:-1]),
            loss_fn_inputs={"target_tokens": ids[1:], "weights": [1.0] * (len(ids) - 1)},
        )

    for step in range(STEPS):
        for i in indices:  # one step of each model in turn: their requests interleave
            c = clients[i]
            fb = c.forward_backward([datum(i)], "cross_entropy")
            opt = c.optim_step(types.AdamParams(**ADAM))
            res[i]["losses"].append(fb.result().metrics["loss:sum"])
            res[i]["grad_norms"].append(opt.result().metrics["grad_norm"])
            if step + 1 == SAMPLE_AT:
                sampler = c.save_weights_and_get_sampling_client()
                prompt = types.ModelInput.from_ints(tok[i].encode(f"What is {i}+"))
                got = sampler.sample(
                    prompt, 1, types.SamplingParams(temperature=1.0, seed=7 + i, max_tokens=6)
                ).result()
                res[i]["sample"] = [list(s.tokens) for s in got.sequences]
                res[i]["sample_logprobs"] = [list(s.logprobs or []) for s in got.sequences]
    sc.close("success").result()
    out.write_text(json.dumps(res))


def inprocess(out: Path, bases: list[str], indices: list[int]) -> None:
    from kitchen.adapters.local_torch import LocalTrainingClient
    from kitchen.types import AdamParams, Datum, ModelInput, SamplingParams, TensorData

    res: dict[int, dict[str, Any]] = {}
    for i in indices:  # each model alone, in a client of its own
        tc = LocalTrainingClient(
            model_name=base_of(i, bases), lora_rank=RANK, seed=100 + i, device="cpu"
        )
        tok = tc.get_tokenizer()
        ids = tok.encode(text(i))
        d = Datum(
            ModelInput.from_ints(ids[:-1]),
            {
                "target_tokens": TensorData.from_list(ids[1:], "int64"),
                "weights": TensorData.from_list([1.0] * (len(ids) - 1), "float32"),
            },
        )
        r: dict[str, Any] = {"losses": [], "grad_norms": []}
        for step in range(STEPS):
            r["losses"].append(tc.forward_backward([d]).result().metrics["loss:sum"])
            r["grad_norms"].append(tc.optim_step(AdamParams(**ADAM)).result().metrics["grad_norm"])
            if step + 1 == SAMPLE_AT:
                sampler = tc.sampling_client()
                prompt = ModelInput.from_ints(tok.encode(f"What is {i}+"))
                params = SamplingParams(
                    temperature=1.0, seed=7 + i, max_tokens=6, stop=(tok.eos_token_id,)
                )
                got = sampler.sample(prompt, 1, params).result()
                r["sample"] = [list(s.tokens) for s in got.sequences]
                r["sample_logprobs"] = [list(s.logprobs or ()) for s in got.sequences]
                sampler.close()
        tc.close()
        res[i] = r
    out.write_text(json.dumps(res))


if __name__ == "__main__":
    mode, target, a, b, *rest = sys.argv[1:]
    run = served if mode == "served" else inprocess
    run(Path(target), [a, b], [int(x) for x in rest])
