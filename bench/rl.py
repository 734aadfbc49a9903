"""One RL step of kitchen's rl workflow beside the same step written by hand.

The hand-written loop is plain torch + peft + Hugging Face ``generate``: for each of
``groups_per_batch`` problems it samples ``group_size`` replies in one ``generate`` call, grades
them with ``check_answer``, takes reward minus the group mean as the advantage, and applies the
importance-sampling loss summed over completion tokens, then AdamW — the same settings as
``kitchen run rl_basic`` (LoRA 16, alpha 32, lr 3e-3, max_tokens 8, temperature 1). kitchen's
step includes what the hand loop lacks: the rollouts blob written and committed before the
gradient, events, metrics. Repeats alternate between the two so machine noise hits both alike.

    python bench/rl.py [--steps 8] [--repeats 3] [--groups 8] [--group-size 8]

Reported per side: median step time (s) over the steps after the first of each repeat, and
sampling throughput (sampled tokens / time spent sampling).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path


def kitchen_side(steps: int, groups: int, size: int) -> dict[str, list[float]]:
    """``kitchen run rl_basic`` in a fresh home; step times from the rollouts stage's starts."""
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "KITCHEN_HOME": home}
        args = [
            f"max_steps={steps}",
            "save_every=0",
            "eval_every=0",
            "eval_examples=1",
            f"groups_per_batch={groups}",
            f"group_size={size}",
        ]
        kitchen = [sys.executable, "-m", "kitchen.cli"]
        subprocess.run(
            [*kitchen, "run", "rl_basic", *args, "--run-id", "b"],
            env=env,
            check=True,
            capture_output=True,
        )
        doc = json.loads(
            subprocess.run(
                [*kitchen, "replay", "b", "--json"],
                env=env,
                check=True,
                capture_output=True,
                text=True,
            ).stdout
        )
        starts = [
            datetime.fromisoformat(e["recorded_at"]).timestamp()
            for e in doc["events"]
            if e["type"] == "StageStarted" and e["payload"]["stage"] == "rollouts"
        ]
        ends = [
            datetime.fromisoformat(e["recorded_at"]).timestamp()
            for e in doc["events"]
            if e["type"] == "StageCompleted" and e["payload"]["stage"] == "log_step_metrics"
        ]
        lines = [
            json.loads(x) for x in (Path(home) / "b" / "metrics.jsonl").read_text().splitlines()
        ]
    step_s = [b - a for a, b in zip(starts, ends, strict=True)]
    return {"step_s": step_s, "sampling_tok_s": [m["sampling_tokens_per_s"] for m in lines]}


def hand_side(steps: int, groups: int, size: int) -> dict[str, list[float]]:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from kitchen.embedded import TINY_MODEL_DIR
    from kitchen.embedded.datasets import check_answer, load_embedded
    from kitchen.renderers import get_renderer

    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(str(TINY_MODEL_DIR))
    base = AutoModelForCausalLM.from_pretrained(str(TINY_MODEL_DIR))
    lora = LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", lora_dropout=0.0)
    model = get_peft_model(base, lora)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=3e-3, betas=(0.9, 0.95), weight_decay=0.0)
    renderer = get_renderer("role_colon", tok)
    rows = load_embedded("kitchen/arith-rl", "train")
    step_s, tok_s = [], []
    for step in range(steps):
        t0 = time.perf_counter()
        model.eval()
        batch, sampled = [], 0
        for g in range(groups):
            row = rows[(step * groups + g) % len(rows)]
            prompt = renderer.build_generation_prompt(row["prompt"]).to_ints()
            ids = torch.tensor([prompt] * size)
            with torch.no_grad():
                out = model.generate(
                    ids,
                    attention_mask=torch.ones_like(ids),
                    do_sample=True,
                    temperature=1.0,
                    top_k=0,
                    max_new_tokens=8,
                    eos_token_id=tok.eos_token_id,
                    pad_token_id=tok.eos_token_id,
                    output_scores=True,
                    return_dict_in_generate=True,
                )
            logp = torch.stack([torch.log_softmax(s, -1) for s in out.scores], 1)
            new = out.sequences[:, len(prompt) :]
            lps = logp.gather(-1, new[..., None])[..., 0]
            rewards = []
            for i in range(size):
                toks = new[i].tolist()
                n = toks.index(tok.eos_token_id) + 1 if tok.eos_token_id in toks else len(toks)
                msg, ok = renderer.parse_response(toks[:n])
                rewards.append(
                    0.1 * (ok - 1) + check_answer("kitchen/arith-rl", row, msg["content"])
                )
                batch.append((prompt, toks[:n], lps[i, :n]))
                sampled += n
            mean = sum(rewards) / size
            batch[-size:] = [
                (p, c, q, r - mean) for (p, c, q), r in zip(batch[-size:], rewards, strict=True)
            ]
        t1 = time.perf_counter()
        model.train()
        width = max(len(p) + len(c) for p, c, _, _ in batch) - 1
        inp = torch.zeros(len(batch), width, dtype=torch.long)
        tgt = torch.zeros(len(batch), width, dtype=torch.long)
        att = torch.zeros(len(batch), width, dtype=torch.long)
        q = torch.zeros(len(batch), width)
        adv = torch.zeros(len(batch), width)
        for i, (p, c, lp, a) in enumerate(batch):
            seq = p + c
            n = len(seq) - 1
            inp[i, :n], tgt[i, :n], att[i, :n] = torch.tensor(seq[:-1]), torch.tensor(seq[1:]), 1
            q[i, len(p) - 1 : n] = lp
            adv[i, len(p) - 1 : n] = a
        logits = model(input_ids=inp, attention_mask=att).logits
        lp_train = torch.log_softmax(logits, -1).gather(-1, tgt[..., None])[..., 0]
        loss = -(torch.exp(lp_train - q) * adv).sum()
        loss.backward()
        opt.step()
        opt.zero_grad()
        done = time.perf_counter()
        step_s.append(done - t0)
        tok_s.append(sampled / (t1 - t0))
    return {"step_s": step_s, "sampling_tok_s": tok_s}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--groups", type=int, default=8)
    ap.add_argument("--group-size", type=int, default=8)
    ap.add_argument("--hand", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.hand:
        print(json.dumps(hand_side(a.steps, a.groups, a.group_size)))
        return
    results: dict[str, dict[str, list[float]]] = {"kitchen": {}, "hand": {}}
    for _ in range(a.repeats):
        for side in ("kitchen", "hand"):
            if side == "kitchen":
                got = kitchen_side(a.steps, a.groups, a.group_size)
            else:
                cmd = [
                    sys.executable,
                    __file__,
                    "--hand",
                    f"--steps={a.steps}",
                    f"--groups={a.groups}",
                    f"--group-size={a.group_size}",
                ]
                got = json.loads(
                    subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
                )
            for key, values in got.items():
                results[side].setdefault(key, []).extend(values[1:])  # first step warms up
    for side, got in results.items():
        print(
            f"{side:8s} step {statistics.median(got['step_s']):.3f} s (median of "
            f"{len(got['step_s'])})  sampling {statistics.median(got['sampling_tok_s']):.0f} tok/s"
        )


if __name__ == "__main__":
    main()
