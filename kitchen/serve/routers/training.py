"""forward_backward (protobuf, ``forward_only`` included) and optim_step: both futures."""

from __future__ import annotations

from fastapi import APIRouter, Request

from kitchen.serve import schemas
from kitchen.serve.deps import Owner, ServerDep
from kitchen.serve.errors import ApiError, bad_request

router = APIRouter(prefix="/api/v1", tags=["training"])

PROTO_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/x-protobuf": {"schema": {"type": "string", "format": "binary"}}},
    }
}


async def _body(request: Request, limit: int) -> bytes:
    body = await request.body()
    if request.headers.get("content-encoding", "").lower() == "zstd":
        import zstandard

        try:
            body = zstandard.ZstdDecompressor().decompress(body, max_output_size=limit)
        except zstandard.ZstdError:
            raise bad_request("body is not valid zstd (or too large once decompressed)") from None
        if len(body) > limit:
            raise ApiError(413, f"request body over {limit} bytes")
    return body


@router.post("/forward_backward", openapi_extra=PROTO_BODY)
async def forward_backward(
    request: Request, owner: Owner, server: ServerDep
) -> schemas.UntypedFutureResponse:
    from kitchen.serve import wire

    s = server.settings
    body = await _body(request, s.max_body_bytes)
    fb = wire.decode_forward_backward(
        body, max_datums=s.max_batch_datums, max_tokens=s.max_batch_tokens
    )
    model = await server.model(owner, fb.model_id)
    kind = "forward" if fb.forward_only else "forward_backward"
    server.check_queue(owner)
    rid = await model.accept(kind, fb.seq_id, body, fb)
    return schemas.UntypedFutureResponse(request_id=rid, model_id=model.model_id)


@router.post("/optim_step")
async def optim_step(
    body: schemas.OptimStepRequest, owner: Owner, server: ServerDep
) -> schemas.UntypedFutureResponse:
    import json

    model = await server.model(owner, body.model_id)
    payload = body.adam_params.model_dump()
    raw = json.dumps(payload, sort_keys=True).encode()
    server.check_queue(owner)
    rid = await model.accept("optim_step", body.seq_id, raw, payload)
    return schemas.UntypedFutureResponse(request_id=rid, model_id=model.model_id)
