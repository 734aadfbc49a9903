"""A saturated server makes the SDK wait, never fail: one resident place and one queued
request per key for four models trained at once from one client. Requests over the key's
limit get 429 with Retry-After and are sent again; a request held up for a second hears
``try_again`` with ``queue_state`` ``paused_capacity`` and the reason; every model ends where
it would alone (the four are the same model, so their losses are equal, bit for bit, however
often each was unloaded)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.serve.conftest import Server, base_env

pytestmark = pytest.mark.slow

CLIENT = """
import json, logging, threading
import tinker
from tinker import types
from tinker.lib.queue_state_logger import QueueStateLogger

states, statuses = [], []
seen = QueueStateLogger.on_queue_state_change
def record(self, state, reason):
    states.append([state.value, reason])
    return seen(self, state, reason)
QueueStateLogger.on_queue_state_change = record

class Count(logging.Handler):
    def emit(self, r):
        if str(r.msg).startswith("HTTP Response"):
            statuses.append(int(r.args[2]))
log = logging.getLogger("tinker._base_client")
log.setLevel(logging.DEBUG); log.addHandler(Count()); log.propagate = False

sc = tinker.ServiceClient()
d = types.Datum(model_input=types.ModelInput.from_ints([5, 6, 7, 8]),
                loss_fn_inputs={"target_tokens": [6, 7, 8, 9], "weights": [1.0] * 4})
losses = {}
def train(n):
    tc = sc.create_lora_training_client(base_model="kitchen/tiny", rank=4, seed=3).result()
    mine = []
    for _ in range(3):
        fb = tc.forward_backward([d], "cross_entropy")
        opt = tc.optim_step(types.AdamParams(learning_rate=1e-2))
        mine.append(fb.result().metrics["loss:sum"]); opt.result()
    losses[n] = mine
threads = [threading.Thread(target=train, args=(n,)) for n in range(4)]
[t.start() for t in threads]; [t.join() for t in threads]
print(json.dumps({"losses": losses, "states": states, "statuses": statuses}))
"""


def test_a_saturated_server_makes_the_sdk_wait(
    server: Server, serve_home: tuple[Path, str], tmp_path: Path
) -> None:
    home, key = serve_home
    server.extra = ["--max-resident-models", "1", "--max-queued-per-key", "1"]
    server.start()
    env = {**base_env(tmp_path), "TINKER_BASE_URL": server.url, "TINKER_API_KEY": key}
    done = subprocess.run(
        [sys.executable, "-c", CLIENT], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    runs = list(out["losses"].values())
    assert len(runs) == 4 and all(len(r) == 3 for r in runs)
    assert all(r == runs[0] for r in runs), runs  # the same model four times: equal bits
    assert runs[0][0] > runs[0][2]  # and it learned
    assert 429 in out["statuses"]  # over the key's limit: refused, waited out, sent again
    assert not [s for s in out["statuses"] if s >= 500]
    # Whether a request waits long enough (a second) to hear paused_capacity depends on how
    # fast the machine unloads and reloads: when it does, the SDK is told why.
    assert {state for state, _ in out["states"]} <= {"active", "paused_capacity"}, out["states"]
    paused = [reason for state, reason in out["states"] if state == "paused_capacity"]
    assert all(r.startswith("kitchen serve is busy") for r in paused), out["states"]
    log = (home / "server-0.log").read_text()
    assert "unloaded" in log
