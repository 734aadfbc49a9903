"""save_final_weights: write the PEFT adapter folder ($KITCHEN_HOME/<run>/final) atomically."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kitchen import faults


def run(ctx: Any) -> dict[str, Any]:
    r = ctx.resources

    def fill(tmp: Path) -> None:
        r.training.save_weights_for_sampler(tmp).result()
        faults.point("final:mid_write")

    ref = ctx.blobs.write_dir(f"{ctx.run_id}/final", fill)
    r.adapter_uri = ref.uri
    return {"uri": ref.uri, "sha256": ref.sha256, "bytes": ref.bytes}
