"""Creating a LoRA training model, and describing one (``get_info``)."""

from __future__ import annotations

from fastapi import APIRouter

from kitchen.serve import backend, ids, schemas
from kitchen.serve.deps import Owner, ServerDep
from kitchen.serve.errors import bad_request
from kitchen.serve.journal import ModelSpec

router = APIRouter(prefix="/api/v1", tags=["models"])


@router.post("/create_model")
async def create_model(
    body: schemas.CreateModelRequest, owner: Owner, server: ServerDep
) -> schemas.UntypedFutureResponse:
    server.check_session(owner, body.session_id)
    server.check_base_model(body.base_model)
    if body.lora_config is None:
        raise bad_request("only LoRA training is served: pass a lora_config")
    if body.optimizer_config.type != "adamw":
        raise bad_request(f"optimizer {body.optimizer_config.type[:40]!r} is not served: use adamw")
    lora = body.lora_config
    backend.check_switches(lora.train_attn, lora.train_mlp)
    model_id = ids.model_id(body.session_id, body.model_seq_id)
    spec = ModelSpec(
        model_id=model_id,
        session_id=body.session_id,
        model_seq_id=body.model_seq_id,
        owner=owner,
        base_model=body.base_model,
        lora_rank=lora.rank,
        seed=lora.seed if lora.seed is not None else server.new_seed(),
        train_attn=lora.train_attn,
        train_mlp=lora.train_mlp,
        train_unembed=lora.train_unembed,
        max_tokens_per_microbatch=server.settings.max_tokens_per_microbatch,
        loggers=server.settings.loggers,
    )
    rid = await server.create_model(spec)
    return schemas.UntypedFutureResponse(request_id=rid, model_id=model_id)


@router.post("/get_info")
async def get_info(
    body: schemas.GetInfoRequest, owner: Owner, server: ServerDep
) -> schemas.GetInfoResponse:
    model = await server.model(owner, body.model_id)
    spec = model.spec
    return schemas.GetInfoResponse(
        model_id=spec.model_id,
        model_data=schemas.ModelData(
            arch="llama",
            model_name=spec.base_model,
            # The SDK loads the tokenizer client-side: a local folder works offline.
            tokenizer_id=await server.model_files(spec.base_model),
        ),
        is_lora=True,
        lora_rank=spec.lora_rank,
        model_name=spec.base_model,
    )
