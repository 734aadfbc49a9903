"""``kitchen sample RUN_ID "prompt"``: generate from a run's weights (final or a checkpoint)."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from kitchen.errors import NotFound
from kitchen.paths import state_folder

if TYPE_CHECKING:
    from kitchen.engine.state import Checkpoint, RunState


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sample", help="generate from a run's final weights or a checkpoint")
    p.add_argument("run_id")
    p.add_argument("prompt", help="the user message")
    p.add_argument(
        "--checkpoint", metavar="NAME", help="checkpoint name, e.g. step-000020 (default: newest)"
    )
    p.add_argument("--max-tokens", type=int, default=32)
    p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default)")
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--top-k", type=int, default=-1)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_sample)


def _pick_checkpoint(state: RunState, name: str | None) -> Checkpoint:
    live = state.live_checkpoints()
    if name is not None:
        for c in live:
            if c.name == name:
                return c
        names = ", ".join(c.name for c in live) or "none"
        raise NotFound(f"run has no live checkpoint {name!r}; live checkpoints: {names}")
    if not live:
        raise NotFound(
            "run has no checkpoint to sample from yet; wait for its first save_every step"
        )
    return live[-1]


def _sample(args: argparse.Namespace) -> int:
    from kitchen.cli._common import fold_run
    from kitchen.store import open_store

    store = open_store()
    state = fold_run(store, args.run_id)
    text, ckpt = generate(
        state,
        args.prompt,
        checkpoint=args.checkpoint,
        max_tokens=args.max_tokens,
        temperature=args.temperature,
        top_p=args.top_p,
        top_k=args.top_k,
        seed=args.seed,
    )
    print(f"(from {ckpt.name}, step {ckpt.step})", file=sys.stderr)
    print(text)
    return 0


def generate(
    state: RunState,
    prompt: str,
    *,
    checkpoint: str | None = None,
    max_tokens: int = 32,
    temperature: float = 0.0,
    top_p: float = 1.0,
    top_k: int = -1,
    seed: int = 0,
) -> tuple[str, Checkpoint]:
    """The reply to ``prompt`` (a user message) from a run's checkpoint (default: its newest
    live one), and that checkpoint: what ``kitchen sample`` and the Python API print."""
    from kitchen import config as kconfig
    from kitchen.engine.launch import build_ports, manifest_of
    from kitchen.paths import kitchen_home
    from kitchen.recipes import load_recipe
    from kitchen.renderers import get_renderer
    from kitchen.types import SamplingParams
    from kitchen.workflows.common.session import open_sampler_from_state

    ckpt = _pick_checkpoint(state, checkpoint)
    recipe = load_recipe(state.recipe or "")
    cfg: Any = kconfig.restore(recipe.config, state.config, {}, recipe.renamed)
    ports = build_ports(manifest_of(recipe, cfg), cfg, kitchen_home())
    source = (
        str(state_folder(ports.blobs.local_path(ckpt.uri)))
        if ckpt.location == "local"
        else ckpt.uri
    )
    try:
        client = open_sampler_from_state(
            ports.training,
            source,
            base_model=cfg.model_name,
            rank=cfg.lora_rank,
            seed=cfg.seed,
            alpha=cfg.lora_alpha,
            dropout=cfg.lora_dropout,
        )
        renderer = get_renderer(cfg.renderer_name, client.get_tokenizer())
        tokens = renderer.build_generation_prompt([{"role": "user", "content": prompt}])
        params = SamplingParams(
            max_tokens=max_tokens,
            temperature=temperature,
            top_p=top_p,
            top_k=top_k,
            stop=tuple(renderer.get_stop_sequences()),  # type: ignore[arg-type]
            seed=seed,
        )
        resp = client.sample(tokens, 1, params).result()
        message, _ = renderer.parse_response(list(resp.sequences[0].tokens))
    finally:
        ports.training.close()
    return str(message.get("content", "")), ckpt
