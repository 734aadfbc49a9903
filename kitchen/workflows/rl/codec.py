"""The rollouts blob: a step's trajectory groups, written losslessly and byte-for-byte the
same for the same groups.

Canonical JSON (sorted keys, no spaces) holds the token ids, rewards and metrics (Python
floats round-trip exactly through ``repr``); the sampler's log-probs are float32 and are kept
as their little-endian float32 bytes in base64, so nothing is rounded on the way. Training
always reads the decoded blob, on the first attempt as on a resume, so both see the same input.
"""

from __future__ import annotations

import base64
import json
import struct
from collections.abc import Sequence
from typing import Any

from kitchen.types import ModelInput
from kitchen.workflows.rl.env import Trajectory, TrajectoryGroup, Transition

FORMAT = "kitchen.rollouts/1"


def _f32(values: Sequence[float]) -> str:
    return base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode("ascii")


def _from_f32(text: str) -> tuple[float, ...]:
    raw = base64.b64decode(text)
    return struct.unpack(f"<{len(raw) // 4}f", raw)


def _transition(t: Transition) -> dict[str, Any]:
    return {
        "ob": t.ob.to_ints(),
        "tokens": list(t.tokens),
        "logprobs_f32": _f32(t.logprobs),
        "reward": t.reward,
        "episode_done": t.episode_done,
        "metrics": t.metrics,
    }


def _group(g: TrajectoryGroup) -> dict[str, Any]:
    return {
        "seed": g.seed,
        "tags": list(g.tags),
        "final_rewards": list(g.final_rewards),
        "metrics": list(g.metrics),
        "trajectories": [
            {
                "transitions": [_transition(t) for t in tr.transitions],
                "final_ob": tr.final_ob.to_ints(),
            }
            for tr in g.trajectories
        ],
    }


def encode(step: int, groups: Sequence[TrajectoryGroup]) -> bytes:
    doc = {"format": FORMAT, "step": step, "groups": [_group(g) for g in groups]}
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def _read_transition(d: dict[str, Any]) -> Transition:
    return Transition(
        ob=_ints(d["ob"]),
        tokens=tuple(int(x) for x in d["tokens"]),
        logprobs=_from_f32(d["logprobs_f32"]),
        reward=float(d["reward"]),
        episode_done=bool(d["episode_done"]),
        metrics={k: float(v) for k, v in d["metrics"].items()},
    )


def _ints(values: list[int]) -> ModelInput:
    return ModelInput.from_ints(values) if values else ModelInput.empty()


def decode(data: bytes) -> tuple[int, list[TrajectoryGroup]]:
    """(step, groups) from a blob written by :func:`encode`."""
    doc = json.loads(data)
    if doc.get("format") != FORMAT:
        raise ValueError(f"not a rollouts blob of format {FORMAT}: {doc.get('format')!r}")
    groups = []
    for g in doc["groups"]:
        trajectories = tuple(
            Trajectory(
                tuple(_read_transition(t) for t in tr["transitions"]),
                _ints(tr["final_ob"]),
            )
            for tr in g["trajectories"]
        )
        groups.append(
            TrajectoryGroup(
                trajectories=trajectories,
                final_rewards=tuple(float(r) for r in g["final_rewards"]),
                metrics=tuple({k: float(v) for k, v in m.items()} for m in g["metrics"]),
                seed=int(g["seed"]),
                tags=tuple(g["tags"]),
            )
        )
    return int(doc["step"]), groups
