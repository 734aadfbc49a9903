"""A sample in flight when the server is killed: samples are not on record, so after the
restart its future answers 410, and the unmodified SDK sends the sample again. Sampling from
a named sampler checkpoint (``create_sampling_client(model_path=…)``) is the path here."""

from __future__ import annotations

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
tc = sc.create_lora_training_client(base_model="kitchen/tiny", rank=4, seed=2).result()
path = tc.save_weights_for_sampler("named").result().path
sampler = sc.create_sampling_client(model_path=path)
params = types.SamplingParams(max_tokens=6, temperature=1.0, seed=5)
out = sampler.sample(types.ModelInput.from_ints([3, 4, 5]), 2, params).result()
again = sampler.sample(types.ModelInput.from_ints([3, 4, 5]), 2, params).result()
print(json.dumps([[s.tokens for s in out.sequences], [s.tokens for s in again.sequences]]))
"""


def test_a_sample_lost_to_a_restart_is_sent_again(
    server: Server, serve_home: tuple[Path, str], tmp_path: Path
) -> None:
    import json
    import threading
    import time

    _, key = serve_home
    server.start("serve:retrieve:sample")
    env = {**base_env(tmp_path), "TINKER_BASE_URL": server.url, "TINKER_API_KEY": key}
    client = subprocess.Popen(
        [sys.executable, "-c", CLIENT], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    restarted: list[int] = []

    def supervise() -> None:
        while client.poll() is None:
            if not server.alive() and not restarted:
                assert server.proc is not None
                restarted.append(server.proc.returncode)
                server.start(wait=False)
            time.sleep(0.05)

    watcher = threading.Thread(target=supervise, daemon=True)
    watcher.start()
    try:
        out, err = client.communicate(timeout=300)
    finally:
        if client.poll() is None:  # timed out: do not leave the client (or the watcher) behind
            client.kill()
            client.communicate()
        watcher.join(10)
    assert client.returncode == 0, err.decode()[-3000:]
    assert restarted == [-9]
    first, second = json.loads(out.decode().strip().splitlines()[-1])
    assert first == second  # seeded: the resent sample is the same sample
    assert len(first) == 2 and all(len(t) <= 6 for t in first)
