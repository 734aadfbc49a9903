"""After ``kill -9`` a model is rebuilt from its newest checkpoint plus the requests logged
after it: with a checkpoint every 2 optimizer steps and 5 steps taken, exactly the fifth
step's two requests (forward_backward, optim_step) are re-applied, on top of step 4. The
restarted server rebuilds nothing until a request names the model."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.serve.conftest import Server, base_env

pytestmark = pytest.mark.slow

CLIENT = """
import tinker
from tinker import types
sc = tinker.ServiceClient()
tc = sc.create_lora_training_client(base_model="kitchen/tiny", rank=4, seed=1).result()
d = types.Datum(model_input=types.ModelInput.from_ints([5, 6, 7]),
                loss_fn_inputs={"target_tokens": [6, 7, 8], "weights": [1.0, 1.0, 1.0]})
for _ in range(5):
    tc.forward_backward([d], "cross_entropy").result()
    tc.optim_step(types.AdamParams(learning_rate=1e-3)).result()
print(tc.model_id)
"""


def events(home: Path, stage: str) -> list[dict[str, object]]:
    from kitchen.store import open_store

    store = open_store(f"sqlite:///{home / 'kitchen.db'}")
    try:
        return [
            {**e.payload["outputs"], "step": e.payload["step"]}
            for run in store.list_runs(recipe="served")
            for e in store.read(run.run_id)
            if e.type == "StageCompleted" and e.payload["stage"] == stage
        ]
    finally:
        store.close()


def test_a_restart_replays_only_the_steps_after_the_checkpoint(
    server: Server, serve_home: tuple[Path, str], tmp_path: Path
) -> None:
    home, key = serve_home
    server.start()
    env = {**base_env(tmp_path), "TINKER_BASE_URL": server.url, "TINKER_API_KEY": key}
    done = subprocess.run(
        [sys.executable, "-c", CLIENT],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert server.proc is not None
    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait()
    server.start()
    model_id = done.stdout.strip().splitlines()[-1]
    time.sleep(1.0)
    assert events(home, "rebuild") == []  # start-up reads no model's log
    answer = httpx.post(
        f"{server.url}/api/v1/get_info",
        json={"model_id": model_id},
        headers={"X-API-Key": key},
        timeout=60,
    )
    assert answer.status_code == 200, answer.text
    deadline = time.monotonic() + 120
    while not (rebuilt := events(home, "rebuild")) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(rebuilt) == 1
    assert rebuilt[0]["replayed_optim_steps"] == 1
    assert rebuilt[0]["replayed_requests"] == 2
    assert rebuilt[0]["step"] == 5
