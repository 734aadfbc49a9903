"""Client configuration, sessions, heartbeats, telemetry, health and capabilities."""

from __future__ import annotations

from fastapi import APIRouter

from kitchen.serve import ids, schemas
from kitchen.serve.deps import Owner, ServerDep
from kitchen.serve.errors import ApiError, not_implemented

router = APIRouter(prefix="/api/v1", tags=["sessions"])

CLIENT_CONFIG = {
    # Requests of one model must arrive in seq_id order: each is on record before the next.
    "parallel_fwdbwd_chunks": False,
    "proto_compress_fwdbwd": False,
    "use_pyqwest_transport": False,
    "sample_use_retrieve_futures": False,
    "custom_loss_server_side": False,
    "sample_join_sampling_session": False,
    "pjwt_auth_enabled": False,
}


@router.post("/client/config")
def client_config(body: schemas.ClientConfigRequest, owner: Owner) -> schemas.ClientConfigResponse:
    return schemas.ClientConfigResponse(**CLIENT_CONFIG)


@router.post("/client/dynamic_config")
def client_dynamic_config(body: schemas.ClientConfigRequest, owner: Owner) -> None:
    raise not_implemented("client/dynamic_config")


@router.get("/healthz")
def healthz(owner: Owner) -> schemas.StatusResponse:
    return schemas.StatusResponse(status="ok")


@router.get("/get_server_capabilities")
def capabilities(owner: Owner, server: ServerDep) -> schemas.CapabilitiesResponse:
    models = [
        schemas.SupportedModel(model_name=name, trainable=True, sampleable=True)
        for name in server.settings.base_models
    ]
    return schemas.CapabilitiesResponse(supported_models=models)


@router.post("/create_session")
def create_session(
    body: schemas.CreateSessionRequest, owner: Owner, server: ServerDep
) -> schemas.CreateSessionResponse:
    session_id = ids.new_session_id()
    server.journal.save_session(session_id, owner, {"sdk_version": body.sdk_version})
    return schemas.CreateSessionResponse(session_id=session_id)


@router.post("/session_heartbeat")
def heartbeat(
    body: schemas.SessionRequest, owner: Owner, server: ServerDep
) -> schemas.TypedResponse:
    server.check_session(owner, body.session_id)
    record = server.journal.load_session(body.session_id) or {}
    if record.get("finished"):
        raise ApiError(410, f"session {body.session_id} has finished")
    return schemas.TypedResponse(type="session_heartbeat")


@router.post("/sessions/{session_id}/finish")
def finish(
    session_id: str, body: schemas.FinishRequest, owner: Owner, server: ServerDep
) -> schemas.TypedResponse:
    server.check_session(owner, session_id)
    record = server.journal.load_session(session_id) or {}
    if not record.get("finished"):
        reason = (body.reason or {}).get("type")
        meta = {k: v for k, v in record.items() if k != "owner"}
        server.journal.save_session(
            session_id, owner, {**meta, "finished": str(reason or "success")[:40]}
        )
    return schemas.TypedResponse(type="finish_session")


@router.post("/telemetry")
def telemetry(body: schemas.TelemetryRequest, owner: Owner) -> schemas.StatusResponse:
    """Accepted and dropped: nothing the SDK reports is needed here, and it may hold headers."""
    return schemas.StatusResponse(status="accepted")
