"""Sampling sessions and ``asample`` (whose future resolves to a protobuf SampleResponse)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter

from kitchen.serve import ids, schemas
from kitchen.serve.deps import Owner, ServerDep
from kitchen.serve.errors import bad_request, not_found
from kitchen.serve.sampling import check_request
from kitchen.serve.server import Server

router = APIRouter(prefix="/api/v1", tags=["sampling"])


async def _record(
    server: Server, owner: str, model_path: str | None, base_model: str | None
) -> dict[str, Any]:
    if model_path is not None:
        tp, spec, _ = await server.resolve(owner, model_path)
        if tp.kind != "sampler_weights":
            raise bad_request("sample from sampler weights (tinker://…/sampler_weights/<name>)")
        return {"owner": owner, "base_model": spec.base_model, "model_path": model_path}
    if base_model is None:
        raise bad_request("name a model_path or a base_model to sample from")
    server.check_base_model(base_model)
    return {"owner": owner, "base_model": base_model, "model_path": None}


@router.post("/create_sampling_session")
async def create_sampling_session(
    body: schemas.CreateSamplingSessionRequest, owner: Owner, server: ServerDep
) -> schemas.CreateSamplingSessionResponse:
    server.check_session(owner, body.session_id)
    record = await _record(server, owner, body.model_path, body.base_model)
    sampler = ids.sampler_id(body.session_id, body.sampling_session_seq_id)
    server.journal.save_sampler(sampler, record)
    return schemas.CreateSamplingSessionResponse(sampling_session_id=sampler)


def _sampler(server: Server, owner: str, sampler: str) -> dict[str, Any]:
    record = server.journal.load_sampler(sampler)
    if record is None or record.get("owner") != owner:
        raise not_found(f"sampler {sampler[:80]!r}")
    return record


@router.get("/samplers/{sampler_id}")
def get_sampler(sampler_id: str, owner: Owner, server: ServerDep) -> schemas.SamplerResponse:
    record = _sampler(server, owner, sampler_id)
    return schemas.SamplerResponse(
        sampler_id=sampler_id,
        base_model=record["base_model"],
        model_path=record.get("model_path"),
    )


@router.post("/asample")
async def asample(
    body: schemas.SampleRequest, owner: Owner, server: ServerDep
) -> schemas.SampleFutureResponse:
    if body.sampling_session_id is not None:
        record = _sampler(server, owner, body.sampling_session_id)
    else:
        record = await _record(server, owner, body.model_path, body.base_model)
    base = record["base_model"]
    s = server.settings
    check_request(body, s.max_samples, s.max_sample_tokens, await server.vocab(base))
    if record.get("model_path"):
        _, spec, folder = await server.resolve(owner, record["model_path"])
        switches = (spec.train_attn, spec.train_mlp)
        sampler = await server.samplers.client(base, spec.lora_rank, switches, Path(folder))
    else:
        sampler = await server.samplers.client(base)
    eos = sampler.get_tokenizer().eos_token_id
    server.check_queue(owner)
    rid, sequence_ids = server.samplers.submit(owner, sampler, body, eos, record.get("model_path"))
    return schemas.SampleFutureResponse(request_id=rid, sample_sequence_ids=sequence_ids)
