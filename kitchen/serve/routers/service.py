"""Client configuration, sessions, heartbeats, telemetry, health and capabilities."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from kitchen.serve import ids, schemas
from kitchen.serve.deps import Owner, ServiceDep
from kitchen.serve.errors import ApiError, not_implemented

router = APIRouter(prefix="/api/v1", tags=["service"])

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
def client_config(body: schemas.ClientConfigRequest, owner: Owner) -> dict[str, Any]:
    return {**CLIENT_CONFIG}


@router.post("/client/dynamic_config")
def client_dynamic_config(body: schemas.ClientConfigRequest, owner: Owner) -> dict[str, Any]:
    raise not_implemented("client/dynamic_config")


@router.get("/healthz")
def healthz(owner: Owner) -> dict[str, str]:
    return {"status": "ok"}


@router.get("/get_server_capabilities")
def capabilities(owner: Owner, service: ServiceDep) -> dict[str, Any]:
    models = [
        {"model_name": name, "trainable": True, "sampleable": True}
        for name in service.settings.base_models
    ]
    return {"supported_models": models}


@router.post("/create_session")
def create_session(
    body: schemas.CreateSessionRequest, owner: Owner, service: ServiceDep
) -> dict[str, Any]:
    session_id = ids.new_session_id()
    service.journal.save_session(session_id, owner, {"sdk_version": body.sdk_version})
    return {"type": "create_session", "session_id": session_id}


@router.post("/session_heartbeat")
def heartbeat(body: schemas.SessionRequest, owner: Owner, service: ServiceDep) -> dict[str, str]:
    service.check_session(owner, body.session_id)
    record = service.journal.load_session(body.session_id) or {}
    if record.get("finished"):
        raise ApiError(410, f"session {body.session_id} has finished")
    return {"type": "session_heartbeat"}


@router.post("/sessions/{session_id}/finish")
def finish(
    session_id: str, body: schemas.FinishRequest, owner: Owner, service: ServiceDep
) -> dict[str, str]:
    service.check_session(owner, session_id)
    record = service.journal.load_session(session_id) or {}
    if not record.get("finished"):
        reason = (body.reason or {}).get("type")
        meta = {k: v for k, v in record.items() if k != "owner"}
        service.journal.save_session(
            session_id, owner, {**meta, "finished": str(reason or "success")[:40]}
        )
    return {"type": "finish_session"}


@router.post("/telemetry")
def telemetry(body: schemas.TelemetryRequest, owner: Owner) -> dict[str, str]:
    """Accepted and dropped: nothing the SDK reports is needed here, and it may hold headers."""
    return {"status": "accepted"}
