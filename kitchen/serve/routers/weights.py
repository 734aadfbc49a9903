"""Checkpoints: save/load state, weights for the sampler, external weights, listing, download.

Every name a client gives passes ``ids.checked_name`` and every ``tinker://`` path resolves
through the caller's own models (``Server.resolve``), so nothing here can name a file outside
the caller's folder. Downloads use signed, expiring per-file URLs (as Tinker's do): whoever
holds the URL may fetch that one file until it expires, and only while the key that asked for
it is not revoked.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse

from kitchen.serve import ids, schemas
from kitchen.serve.deps import Owner, ServerDep
from kitchen.serve.errors import ApiError, bad_request, not_found
from kitchen.serve.journal import ModelSpec
from kitchen.serve.model import ServedModel
from kitchen.serve.server import Server

router = APIRouter(prefix="/api/v1", tags=["weights"])
URL_TTL_S = 3600


def _raw(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, sort_keys=True).encode()


async def _save(
    server: Server,
    model: ServedModel,
    op: str,
    kind: str,
    name: str,
    seq_id: int | None,
    extra: dict[str, Any] | None = None,
) -> schemas.UntypedFutureResponse:
    ids.checked_name(name)
    if model.folder(kind, name).exists():
        raise bad_request(f"checkpoint tinker://{model.model_id}/{kind}/{name} exists")
    payload = {"kind": kind, "name": name, **(extra or {})}
    server.check_queue(model.owner)
    rid = await model.accept(op, seq_id, _raw(payload), payload)
    return schemas.UntypedFutureResponse(request_id=rid, model_id=model.model_id)


@router.post("/save_weights")
async def save_weights(
    body: schemas.SaveWeightsRequest, owner: Owner, server: ServerDep
) -> schemas.UntypedFutureResponse:
    model = await server.model(owner, body.model_id)
    name = body.path or f"state-{body.seq_id or 0:06d}"
    return await _save(server, model, "save_weights", "weights", name, body.seq_id)


@router.post("/save_weights_for_sampler")
async def save_weights_for_sampler(
    body: schemas.SaveWeightsForSamplerRequest, owner: Owner, server: ServerDep
) -> schemas.UntypedFutureResponse:
    model = await server.model(owner, body.model_id)
    if body.path is None and body.sampling_session_seq_id is None:
        raise bad_request("save_weights_for_sampler needs a path or a sampling_session_seq_id")
    name = body.path or f"sampler-{body.seq_id or 0:06d}"
    extra = {"sampling_session_seq_id": None if body.path else body.sampling_session_seq_id}
    return await _save(
        server, model, "save_weights_for_sampler", "sampler_weights", name, body.seq_id, extra
    )


@router.post("/save_weights_external")
async def save_weights_external(
    body: schemas.SaveWeightsExternalRequest, owner: Owner, server: ServerDep
) -> schemas.UntypedFutureResponse:
    if body.age_encryption_recipients:
        raise bad_request("encrypted external weights are not supported by kitchen serve")
    model = await server.model(owner, body.model_id)
    return await _save(
        server, model, "save_weights_external", "external_weights", body.path, body.seq_id
    )


@router.post("/load_weights")
async def load_weights(
    body: schemas.LoadWeightsRequest, owner: Owner, server: ServerDep
) -> schemas.UntypedFutureResponse:
    if body.weights_access_token:
        raise bad_request("weights_access_token is not supported: load your own checkpoints")
    tp, source, folder = await server.resolve(owner, body.path)
    if tp.kind != "weights":
        raise bad_request("load_weights takes a training state (tinker://…/weights/<name>)")
    uri = folder.relative_to(server.settings.home.resolve()).as_posix()
    if body.session_id is not None:  # create a new model from the checkpoint
        if body.model_seq_id is None:
            raise bad_request("a load that creates a model needs session_id and model_seq_id")
        server.check_session(owner, body.session_id)
        if body.base_model not in (None, source.base_model):
            raise bad_request("base_model must match the checkpoint's base model")
        s = source
        spec = ModelSpec(
            model_id=ids.model_id(body.session_id, body.model_seq_id),
            session_id=body.session_id,
            model_seq_id=body.model_seq_id,
            owner=owner,
            base_model=s.base_model,
            lora_rank=s.lora_rank,
            seed=s.seed,
            train_attn=s.train_attn,
            train_mlp=s.train_mlp,
            train_unembed=s.train_unembed,
            source={"path": str(tp), "uri": uri, "optimizer": body.optimizer},
            max_tokens_per_microbatch=server.settings.max_tokens_per_microbatch,
            loggers=server.settings.loggers,
        )
        rid = await server.create_model(spec)
        return schemas.UntypedFutureResponse(request_id=rid, model_id=spec.model_id)
    if body.model_id is None:
        raise bad_request("load_weights needs a model_id, or a session_id and model_seq_id")
    model = await server.model(owner, body.model_id)
    if (model.spec.base_model, model.spec.lora_rank) != (source.base_model, source.lora_rank):
        raise bad_request("that checkpoint was saved by a model of another base model or rank")
    payload = {"path": str(tp), "uri": uri, "optimizer": body.optimizer}
    raw = _raw(payload)
    payload["folder"] = str(folder)
    server.check_queue(owner)
    rid = await model.accept("load_weights", body.seq_id, raw, payload)
    return schemas.UntypedFutureResponse(request_id=rid, model_id=model.model_id)


@router.get("/training_runs/{model_id}/checkpoints")
async def list_checkpoints(
    model_id: str, owner: Owner, server: ServerDep
) -> schemas.CheckpointsResponse:
    spec = await server.spec_of(model_id)
    if spec is None or spec.owner != owner:
        raise not_found(f"training run {model_id[:80]!r}")
    rows = []
    for kind, ctype in ids.KINDS.items():
        base = ids.owner_path(
            server.journal.owner_dir(owner), "runs", spec.run_id, kind, "x"
        ).parent
        if not base.is_dir():
            continue
        for folder in sorted(
            p for p in base.iterdir() if p.is_dir() and not p.name.startswith(".")
        ):
            files = [f for f in folder.iterdir() if f.is_file() and not f.name.startswith(".")]
            rows.append(
                schemas.Checkpoint(
                    checkpoint_id=f"{kind}/{folder.name}",
                    checkpoint_type=ctype,
                    time=datetime.fromtimestamp(folder.stat().st_mtime, UTC).isoformat(),
                    tinker_path=str(ids.TinkerPath(model_id, kind, folder.name)),
                    size_bytes=sum(f.stat().st_size for f in files),
                )
            )
    return schemas.CheckpointsResponse(checkpoints=rows, cursor=None)


def _sign(server: Server, owner: str, model_id: str, name: str, file: str, expires: int) -> str:
    msg = f"{owner}\n{model_id}\n{name}\n{file}\n{expires}".encode()
    return hmac.new(server.secret, msg, hashlib.sha256).hexdigest()


@router.get("/training_runs/{model_id}/checkpoints/{kind}/{name}/external_weights_urls")
async def external_weights_urls(
    model_id: str, kind: str, name: str, request: Request, owner: Owner, server: ServerDep
) -> schemas.WeightsUrlsResponse:
    if kind != "external_weights":
        raise bad_request("download URLs exist for external weights only")
    _, _, folder = await server.resolve(owner, f"tinker://{model_id}/{kind}/{name}")
    expires = int(time.time()) + URL_TTL_S
    base = str(request.base_url).rstrip("/")
    urls = {}
    for f in sorted(folder.iterdir()):
        if f.is_file() and not f.name.startswith("."):
            sig = _sign(server, owner, model_id, name, f.name, expires)
            urls[f.name] = (
                f"{base}/api/v1/files/{model_id}/{name}/{f.name}?expires={expires}&sig={sig}"
            )
    expiry = datetime.fromtimestamp(expires, UTC).isoformat()
    return schemas.WeightsUrlsResponse(urls=urls, expires=expiry)


@router.get("/files/{model_id}/{name}/{file}")
async def download(
    model_id: str, name: str, file: str, expires: int, sig: str, server: ServerDep
) -> FileResponse:
    """A signed URL from ``external_weights_urls``: no API key, the signature stands for it."""
    model = await server.spec_of(model_id)
    bad = ApiError(404, "no such file, or the link expired")
    if model is None or expires < time.time() or len(sig) != 64:
        raise bad
    want = _sign(server, model.owner, model_id, name, file, expires)
    if not hmac.compare_digest(want, sig) or not server.keys.is_active(model.owner):
        raise bad
    ids.checked_name(name)
    ids.checked_name(file, "file name")
    path = ids.owner_path(
        server.journal.owner_dir(model.owner),
        "runs",
        model.run_id,
        "external_weights",
        name,
        file,
    )
    if not path.is_file():
        raise bad
    return FileResponse(path)
