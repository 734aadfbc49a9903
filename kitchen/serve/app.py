"""The ASGI app: routers, the body-size limit, and errors in the SDK's shape.

``create_app(settings, ports)`` builds everything on the backend and the log its caller
opened (``kitchen serve`` does, in ``kitchen.cli.serve``); the server starts in the app's
lifespan (a served model is rebuilt when a request first names it). Nothing user-controlled
reaches a log line: keys never do, and bodies are not logged at all.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from kitchen._version import __version__
from kitchen.engine.io_faults import storage_fault
from kitchen.errors import InfrastructureError, KitchenError
from kitchen.serve.errors import RETRY_AFTER_S, ApiError, unavailable
from kitchen.serve.routers import futures, models, sampling, sessions, training, weights
from kitchen.serve.server import Ports, Server
from kitchen.serve.settings import ServeSettings

log = logging.getLogger("kitchen.serve")
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[
    [Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]
]


class BodyLimit:
    """413 for a body over the limit, from Content-Length or from counting what streams in."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length" and (not value.isdigit() or int(value) > self.limit):
                await _too_large(send, self.limit)
                return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _TooLarge
            return message

        try:
            await self.app(scope, counted, send)
        except _TooLarge:
            await _too_large(send, self.limit)


class _TooLarge(Exception):
    pass


async def _too_large(send: Any, limit: int) -> None:
    body = ApiError(413, f"request body over {limit} bytes").body()
    import json

    raw = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(raw)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": raw})


def create_app(settings: ServeSettings, ports: Ports) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        server = Server(settings, ports)
        app.state.server = server
        await server.start()
        try:
            yield
        finally:
            await server.close()

    app = FastAPI(
        title="kitchen serve",
        version=__version__,
        description="A Tinker-compatible training server on a kitchen training backend.",
        lifespan=lifespan,
    )
    for router in (
        sessions.router,
        models.router,
        training.router,
        weights.router,
        sampling.router,
        futures.router,
    ):
        app.include_router(router)
    _errors(app)
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    return app


def _errors(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after else None
        return JSONResponse(exc.body(), status_code=exc.status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid body"}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return JSONResponse(ApiError(400, f"{where}: {first.get('msg')}").body(), status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(
            ApiError(exc.status_code, str(exc.detail)).body(), status_code=exc.status_code
        )

    @app.exception_handler(KitchenError)
    async def kitchen_error(request: Request, exc: KitchenError) -> JSONResponse:
        return JSONResponse(ApiError(400, str(exc)).body(), status_code=400)

    @app.exception_handler(InfrastructureError)
    async def fault(request: Request, exc: InfrastructureError) -> JSONResponse:
        return _unavailable(exc)

    @app.exception_handler(OSError)
    async def os_error(request: Request, exc: OSError) -> JSONResponse:
        found = storage_fault(exc, then="retry")
        if found is None:
            log.error("request failed", exc_info=exc)
            return JSONResponse(ApiError(500, "internal error", "server").body(), status_code=500)
        return _unavailable(found)


def _unavailable(exc: InfrastructureError) -> JSONResponse:
    log.warning("answered 503: %s", exc)
    error = unavailable(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    return JSONResponse(
        error.body(), status_code=error.status, headers={"Retry-After": str(RETRY_AFTER_S)}
    )
