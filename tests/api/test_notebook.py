"""kitchen.api in a real Jupyter kernel (nbclient): one cell trains a run, the next plots its
metrics rows with matplotlib, as a user's notebook does."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

pytestmark = pytest.mark.slow

CELLS = [
    "import kitchen.api as kt\n"
    "run = kt.run('sl_basic', run_id='nb', max_steps=4, save_every=2, batch_size=8,\n"
    "             max_length=64, eval_examples=4, eval_max_tokens=4)\n"
    "print(run.status, run.step, len(run.metrics))",
    "import matplotlib.pyplot as plt\n"
    "rows = kt.load('nb').metrics\n"
    "plt.plot([r['step'] for r in rows], [r['train_mean_nll'] for r in rows])\n"
    "plt.show()",
]


def test_a_notebook_cell_trains_and_the_next_plots(tmp_path: Path) -> None:
    home = tmp_path / "home"
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in CELLS])
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KITCHEN_", "OTEL_"))}
    env["KITCHEN_HOME"] = str(home)
    client = NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    with client.setup_kernel(env=env):
        for index, cell in enumerate(nb.cells):
            client.execute_cell(cell, index)
    printed = "".join(o.get("text", "") for o in nb.cells[0].outputs if o.output_type == "stream")
    assert "completed 4 4\n" in printed, nb.cells[0].outputs
    images = [o for o in nb.cells[1].outputs if "image/png" in o.get("data", {})]
    assert len(images) == 1, nb.cells[1].outputs
    assert (home / "nb" / "final" / "adapter_model.safetensors").is_file()
