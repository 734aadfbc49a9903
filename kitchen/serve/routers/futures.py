"""``retrieve_future``: a long poll that answers the result, an error, or ``try_again``."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from fastapi.responses import Response

from kitchen.engine import faults
from kitchen.serve import schemas
from kitchen.serve.deps import Owner, ServerDep
from kitchen.serve.errors import ApiError, not_found, not_implemented

router = APIRouter(prefix="/api/v1", tags=["futures"])
PAUSED_ANSWER_S = 1.0


# The answer is the future's own body (JSON, or protobuf for samples and forward_backward),
# passed through as it was stored, or a TryAgainResponse while it is pending.
@router.post(
    "/retrieve_future",
    response_model=None,
    responses={200: {"model": schemas.TryAgainResponse, "description": "the result, or try_again"}},
)
async def retrieve_future(
    body: schemas.FutureRetrieveRequest, owner: Owner, server: ServerDep
) -> Response | schemas.TryAgainResponse:
    entry = server.futures.get(body.request_id)
    if entry is None:
        # a model's request on record, of a model not yet taken up since a restart
        model_id = body.request_id.rpartition(":req:")[0] or body.request_id.removesuffix(":create")
        spec = await server.spec_of(model_id)
        if spec is not None and spec.owner == owner:
            await server.take_up(model_id)
            entry = server.futures.get(body.request_id)
    if body.request_id.startswith("sample:"):
        faults.point("serve:retrieve:sample")  # a sample acknowledged, not yet answered
    if entry is None or entry.owner != owner:
        if body.request_id.startswith("sample:") and entry is None:
            # Samples are not on record: after a restart 410 makes the SDK send it again.
            raise ApiError(410, f"request {body.request_id} is gone: send it again")
        raise not_found(f"request {body.request_id[:120]!r}")
    try:
        # A request held up by a saturated server says so within a second (the SDK
        # logs the reason and polls again); one that is running is awaited for the long poll.
        first = min(PAUSED_ANSWER_S, server.settings.long_poll_s)
        try:
            result = await asyncio.wait_for(asyncio.shield(entry.future), first)
        except TimeoutError:
            if server.queue_state(body.request_id)[0] != "active":
                raise
            rest = server.settings.long_poll_s - first
            result = await asyncio.wait_for(asyncio.shield(entry.future), rest)
    except TimeoutError:
        state, reason = server.queue_state(body.request_id)
        return schemas.TryAgainResponse(
            request_id=body.request_id, queue_state=state, queue_state_reason=reason
        )
    server.futures.mark_retrieved(body.request_id)
    return Response(result.body, media_type=result.content_type)


@router.post("/cancel_future")
def cancel_future(body: schemas.CancelFutureRequest, owner: Owner, server: ServerDep) -> None:
    """Accepted; a queued request still runs (a training request is already on record)."""
    entry = server.futures.get(body.request_id)
    if entry is None or entry.owner != owner:
        raise not_found(f"request {body.request_id[:120]!r}")


@router.post("/retrieve_futures")
def retrieve_futures(owner: Owner) -> None:
    raise not_implemented("retrieve_futures")
