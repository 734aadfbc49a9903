"""The acceptance loop, run two ways: through the unmodified tinker SDK against ``kitchen serve``
(``served``), and in-process on the local backend (``inprocess``), each in its own process.

Both write the same JSON of results (losses, optimizer metrics, sampled tokens and logprobs,
prompt logprobs, the custom loss, sha256 of the weights that came out), so a test compares
two independent runs. The served mode reads only TINKER_BASE_URL and TINKER_API_KEY (and
TINKER_TELEMETRY) from the environment: it has no retry code of its own.

    python loop_script.py served OUT.json
    python loop_script.py inprocess OUT.json WORKDIR
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

BASE = "kitchen/tiny"
RANK = 8
SEED = 11
LR = 5e-3
TEXTS = ["What is 12+7? 19", "What is 3+4? 7", "What is 20+5? 25", "What is 9+9? 18"]
ADAM = {
    "learning_rate": LR,
    "beta1": 0.9,
    "beta2": 0.95,
    "eps": 1e-12,
    "weight_decay": 0.0,
    "grad_clip_norm": 0.0,
}
STEPS_A, STEPS_B = 3, 2
SAMPLE = {"max_tokens": 8}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def batch(encode: Any, make: Any) -> list[Any]:
    out = []
    for text in TEXTS:
        ids = encode(text)
        n = len(ids) - 1
        weights = [0.0] * (n // 2) + [1.0] * (n - n // 2)
        out.append(make(ids[:-1], ids[1:], weights))
    return out


def custom_loss(data: list[Any], logprobs: list[Any]) -> tuple[Any, dict[str, float]]:
    """A loss the backend does not have: the mean over data of the squared summed logprob."""
    import torch

    per = torch.stack([lp.sum() for lp in logprobs])
    loss = (per**2).mean() / 100.0
    return loss, {"sq:mean": float(loss.detach())}


def served(out: Path) -> None:
    import tinker
    from tinker import types

    sc = tinker.ServiceClient()
    tc = sc.create_lora_training_client(base_model=BASE, rank=RANK, seed=SEED).result()
    tok = tc.get_tokenizer()

    def make(inp: list[int], tgt: list[int], w: list[float]) -> Any:
        return types.Datum(
            model_input=types.ModelInput.from_ints(inp),
            loss_fn_inputs={"target_tokens": tgt, "weights": w},
        )

    data = batch(tok.encode, make)
    res: dict[str, Any] = {"losses": [], "grad_norms": []}

    def steps(client: Any, n: int) -> None:
        for _ in range(n):
            fb = client.forward_backward(data, "cross_entropy")
            opt = client.optim_step(types.AdamParams(**ADAM))
            res["losses"].append(fb.result().metrics["loss:sum"])
            res["grad_norms"].append(opt.result().metrics["grad_norm"])

    steps(tc, STEPS_A)
    saved = tc.save_state("after-a").result()
    tc2 = sc.create_training_client_from_state_with_optimizer(saved.path).result()
    steps(tc2, STEPS_B)
    sampler = tc2.save_weights_and_get_sampling_client().result()
    prompt = types.ModelInput.from_ints(tok.encode("What is 12+7?"))
    greedy = sampler.sample(prompt, 1, types.SamplingParams(temperature=0.0, **SAMPLE)).result()
    seeded = sampler.sample(
        prompt, 2, types.SamplingParams(temperature=1.0, seed=7, **SAMPLE)
    ).result()
    res["greedy"] = [s.tokens for s in greedy.sequences]
    res["greedy_logprobs"] = [s.logprobs for s in greedy.sequences]
    res["seeded"] = [s.tokens for s in seeded.sequences]
    res["prompt_logprobs"] = sampler.compute_logprobs(
        types.ModelInput.from_ints(tok.encode(TEXTS[0]))
    ).result()
    custom = tc2.forward_backward_custom(data, custom_loss).result()
    res["custom_loss"] = custom.metrics["loss:sum"]
    ext = tc2.save_weights_external("final").result()
    urls = tinker.RestClient().get_external_weights_urls(ext.path).result()
    import httpx

    res["external"] = {
        name: hashlib.sha256(httpx.get(url, timeout=30).content).hexdigest()
        for name, url in sorted(urls.urls.items())
    }
    res["model_ids"] = [tc.model_id, tc2.model_id]
    sc.close("success").result()
    out.write_text(json.dumps(res))


def inprocess(out: Path, work: Path) -> None:
    from kitchen.adapters.local_torch import LocalTrainingClient
    from kitchen.types import AdamParams, Datum, ModelInput, SamplingParams, TensorData

    def make(inp: list[int], tgt: list[int], w: list[float]) -> Any:
        return Datum(
            ModelInput.from_ints(inp),
            {
                "target_tokens": TensorData.from_list(tgt, "int64"),
                "weights": TensorData.from_list(w, "float32"),
            },
        )

    tc = LocalTrainingClient(model_name=BASE, lora_rank=RANK, seed=SEED)
    tok = tc.get_tokenizer()
    data = batch(tok.encode, make)
    res: dict[str, Any] = {"losses": [], "grad_norms": []}

    def steps(client: Any, n: int) -> None:
        for _ in range(n):
            res["losses"].append(client.forward_backward(data).result().metrics["loss:sum"])
            res["grad_norms"].append(
                client.optim_step(AdamParams(**ADAM)).result().metrics["grad_norm"]
            )

    steps(tc, STEPS_A)
    tc.save_state(work / "after-a").result()
    tc2 = LocalTrainingClient(model_name=BASE, lora_rank=RANK, seed=SEED)
    tc2.load_state(work / "after-a", with_optimizer=True).result()
    steps(tc2, STEPS_B)
    tc2.save_weights_for_sampler(work / "sampler").result()
    sampler = tc2.sampling_client()
    eos = tok.eos_token_id
    prompt = ModelInput.from_ints(tok.encode("What is 12+7?"))
    greedy = sampler.sample(
        prompt, 1, SamplingParams(temperature=0.0, stop=(eos,), **SAMPLE)
    ).result()
    seeded = sampler.sample(
        prompt, 2, SamplingParams(temperature=1.0, seed=7, stop=(eos,), **SAMPLE)
    ).result()
    res["greedy"] = [list(s.tokens) for s in greedy.sequences]
    res["greedy_logprobs"] = [list(s.logprobs or ()) for s in greedy.sequences]
    res["seeded"] = [list(s.tokens) for s in seeded.sequences]
    res["prompt_logprobs"] = sampler.compute_logprobs(
        ModelInput.from_ints(tok.encode(TEXTS[0]))
    ).result()
    res["custom_loss"] = tc2.forward_backward_custom(data, custom_loss).result().metrics["loss:sum"]
    tc2.save_weights_for_sampler(work / "final").result()
    res["external"] = {p.name: sha256(p) for p in sorted((work / "final").iterdir())}
    res["sampler_files"] = {p.name: sha256(p) for p in sorted((work / "sampler").iterdir())}
    out.write_text(json.dumps(res))


if __name__ == "__main__":
    if sys.argv[1] == "served":
        served(Path(sys.argv[2]))
    else:
        inprocess(Path(sys.argv[2]), Path(sys.argv[3]))
