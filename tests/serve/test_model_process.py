"""The models' own process under ``kitchen serve``: it goes when the server is killed, and when
it dies the server stops at once (exit 1, one line), as a kill would stop it, so that what
supervises the server restarts it. Through the real CLI and the real SDK."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import pytest

from tests.serve.conftest import Server, base_env

CLIENT = """
import json, sys
import tinker
from tinker import types

sc = tinker.ServiceClient()
d = types.Datum(model_input=types.ModelInput.from_ints([5, 6, 7, 8]),
                loss_fn_inputs={"target_tokens": [6, 7, 8, 9], "weights": [1.0] * 4})
tc = sc.create_lora_training_client(base_model="kitchen/tiny", rank=4, seed=3).result()
losses = []
for _ in range(int(sys.argv[1])):
    fb = tc.forward_backward([d], "cross_entropy")
    opt = tc.optim_step(types.AdamParams(learning_rate=1e-2))
    losses.append(fb.result().metrics["loss:sum"]); opt.result()
print(json.dumps(losses))
"""


def train(server: Server, key: str, steps: int) -> list[float]:
    env = base_env(server.home)
    env.update(TINKER_BASE_URL=server.url, TINKER_API_KEY=key)
    done = subprocess.run(
        [sys.executable, "-c", CLIENT, str(steps)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def model_process(server: Server) -> int:
    assert server.proc is not None
    pid = server.proc.pid
    (child,) = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return int(child)


def gone(pid: int, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().split(") ")[-1].split()[0]
        except FileNotFoundError:
            return True
        if state == "Z":  # exited; its parent (pytest's init here) has not reaped it yet
            return True
        time.sleep(0.05)
    return False


def test_the_model_process_goes_with_a_killed_server_and_a_dead_one_stops_the_server(
    server: Server, serve_home: tuple[Path, str]
) -> None:
    _, key = serve_home
    server.start()
    first = train(server, key, 2)
    child = model_process(server)
    assert server.proc is not None
    server.proc.kill()  # kill -9: nothing tells the child but its pipe closing
    server.proc.wait()
    assert gone(child, within=10), "the model process outlived the killed server"

    server.start()
    again = train(server, key, 2)
    assert again == first  # a new model, seeded alike: same losses, bit for bit
    child = model_process(server)
    os.kill(child, signal.SIGKILL)  # as the kernel's OOM killer would
    assert server.proc is not None
    assert server.proc.wait(timeout=30) == 1
    log = (server.home / f"server-{server.starts - 1}.log").read_text()
    (line,) = [x for x in log.splitlines() if "model process died" in x]
    assert "killed by SIGKILL" in line and "restart" in line
    assert "Traceback" not in log


def test_a_client_the_server_drops_is_let_go_in_the_model_process() -> None:
    import gc

    from kitchen.cli.serve import serving_backend
    from kitchen.errors import InfrastructureError
    from kitchen.serve.model_process import ModelProcess
    from kitchen.types import ModelInput, SamplingParams

    models = ModelProcess(partial(serving_backend, "cpu", Path("unused")))
    try:
        sampler = models.create_served_sampling_client("kitchen/tiny", 4)
        greedy = SamplingParams(max_tokens=2, temperature=0.0)
        prompt = ModelInput.from_ints([5, 6, 7])
        assert sampler.batch_key(prompt, 1, greedy) is not None
        assert len(sampler.sample(prompt, 1, greedy).result().sequences[0].tokens) == 2
        handle = sampler._handle
        del sampler
        gc.collect()  # as the server's sampler cache lets one go
        assert models.vocab_size("kitchen/tiny") == 262  # the next call carries the release
        with pytest.raises(InfrastructureError, match=f"no client {handle} here"):
            models.call(handle, "sample", prompt, 1, greedy).result()
    finally:
        models.close()


def test_a_backend_that_cannot_start_says_why_once() -> None:
    from kitchen.errors import InfrastructureError
    from kitchen.serve.model_process import ModelProcess

    reasons: list[str] = []
    models = ModelProcess(partial(int, "not a number"), on_death=reasons.append)
    with pytest.raises(InfrastructureError, match="could not start: invalid literal"):
        models.vocab_size("kitchen/tiny")
    models.close()
    assert len(reasons) == 1 and "could not start" in reasons[0]
