"""Two optimizer steps of the acceptance loop's data through the unmodified tinker SDK against
``kitchen serve`` (``served``), or in-process on the local backend (``inprocess``).

The served mode takes its first step, writes READY, and waits for GO before the second: the
test fills the server's disk in between. It has no retry code of its own: what rides out the
full disk is the SDK's own retrying of a 503.

    python serve_client.py served OUT.json READY GO
    python serve_client.py inprocess OUT.json
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from tests.serve.loop_script import ADAM, BASE, RANK, SEED, batch


def served(out: Path, ready: Path, go: Path) -> None:
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
    res: dict[str, Any] = {"losses": [], "grad_norms": [], "model_id": tc.model_id}
    for step in range(2):
        if step == 1:
            ready.write_text("ready")
            while not go.exists():
                time.sleep(0.05)
        fb = tc.forward_backward(data, "cross_entropy")
        opt = tc.optim_step(types.AdamParams(**ADAM))
        res["losses"].append(fb.result().metrics["loss:sum"])
        res["grad_norms"].append(opt.result().metrics["grad_norm"])
    sc.close("success").result()
    out.write_text(json.dumps(res))


def inprocess(out: Path) -> None:
    from kitchen.adapters.local_torch import LocalTrainingClient
    from kitchen.types import AdamParams, Datum, ModelInput, TensorData

    def make(inp: list[int], tgt: list[int], w: list[float]) -> Any:
        return Datum(
            ModelInput.from_ints(inp),
            {
                "target_tokens": TensorData.from_list(tgt, "int64"),
                "weights": TensorData.from_list(w, "float32"),
            },
        )

    tc = LocalTrainingClient(model_name=BASE, lora_rank=RANK, seed=SEED)
    data = batch(tc.get_tokenizer().encode, make)
    res: dict[str, Any] = {"losses": [], "grad_norms": []}
    for _ in range(2):
        res["losses"].append(tc.forward_backward(data).result().metrics["loss:sum"])
        res["grad_norms"].append(tc.optim_step(AdamParams(**ADAM)).result().metrics["grad_norm"])
    out.write_text(json.dumps(res))


if __name__ == "__main__":
    if sys.argv[1] == "served":
        served(Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4]))
    else:
        inprocess(Path(sys.argv[2]))
