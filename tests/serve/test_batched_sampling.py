"""Identical sample requests sent at once are decoded once and answered from that one batch,
through the unmodified tinker SDK: every answer equals the same request sent alone, bit for
bit (tokens and logprobs, prompt logprobs included). Requests that differ (another seed,
another prompt) are sampled alone, since a batch of more rows changes the forward's rounding
(docs/serve.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.serve.conftest import Server, base_env

pytestmark = pytest.mark.slow

CLIENT = """
import json, sys, tinker
from tinker import types
sc = tinker.ServiceClient()
sampler = sc.create_sampling_client(base_model="kitchen/tiny")
calls = {
    "seeded": ([3, 4, 5, 6], 2, dict(max_tokens=12, temperature=1.0, seed=11), False),
    "greedy": ([7, 8, 9], 1, dict(max_tokens=12, temperature=0.0), True),
    "other_seed": ([3, 4, 5, 6], 2, dict(max_tokens=12, temperature=1.0, seed=12), False),
    "other_prompt": ([3, 4, 5, 7], 2, dict(max_tokens=12, temperature=1.0, seed=11), False),
}
def send(name):
    tokens, n, params, prompt_lp = calls[name]
    return sampler.sample(
        types.ModelInput.from_ints(tokens), n, types.SamplingParams(**params),
        include_prompt_logprobs=prompt_lp,
    )
def dump(resp):
    return {
        "tokens": [list(s.tokens) for s in resp.sequences],
        "logprobs": [list(s.logprobs or []) for s in resp.sequences],
        "prompt_logprobs": resp.prompt_logprobs,
    }
alone = {name: dump(send(name).result()) for name in calls}
names = ["seeded"] * 6 + ["greedy"] * 4 + ["other_seed", "other_prompt"]
futures = [(name, send(name)) for name in names]  # all in flight at once
together = [(name, dump(f.result())) for name, f in futures]
print(json.dumps({"alone": alone, "together": together}))
"""


def test_identical_samples_share_one_decode_and_equal_samples_sent_alone(
    server: Server, serve_home: tuple[Path, str], tmp_path: Path
) -> None:
    home, key = serve_home
    server.start()
    env = {**base_env(tmp_path), "TINKER_BASE_URL": server.url, "TINKER_API_KEY": key}
    client = subprocess.run(
        [sys.executable, "-c", CLIENT], env=env, capture_output=True, timeout=300
    )
    assert client.returncode == 0, client.stderr.decode()[-3000:]
    out = json.loads(client.stdout.decode().strip().splitlines()[-1])
    alone, together = out["alone"], out["together"]
    for name, got in together:
        assert got == alone[name], name  # == on floats: bit for bit
    assert alone["seeded"] != alone["other_seed"] != alone["other_prompt"]
    assert alone["greedy"]["prompt_logprobs"][0] is None
    server.stop()
    log = (home / "server-0.log").read_text()
    batched = [int(line.split()[2]) for line in log.splitlines() if "decoded in one batch" in line]
    assert batched and max(batched) >= 2, log[-3000:]  # some requests did share a decode
