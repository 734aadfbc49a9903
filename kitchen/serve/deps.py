"""FastAPI dependencies: the server, and the caller's key id (checked on every request).

The key arrives as ``X-API-Key`` (what the tinker SDK sends) or as a bearer token. Only its
id leaves this function: the key itself is never stored, logged or put in an event.

Both are coroutines although neither awaits: FastAPI runs a plain function dependency on a
worker thread, and two thread hand-offs per request cost the event loop (and the torch
thread, which shares the interpreter lock with it) more than the work itself (a dict look-up
and one ``stat`` of the keys file).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from kitchen.serve.errors import unauthorized
from kitchen.serve.server import Server


async def get_server(request: Request) -> Server:
    return _server(request)


def _server(request: Request) -> Server:
    server: Server = request.app.state.server
    return server


async def get_owner(
    request: Request,
    x_api_key: Annotated[str | None, Header(alias="X-API-Key", max_length=300)] = None,
) -> str:
    key = x_api_key
    auth = request.headers.get("authorization", "")
    if key is None and auth.lower().startswith("bearer "):
        key = auth[7:].strip()
    owner = _server(request).keys.owner_of(key)
    if owner is None:
        raise unauthorized()
    return owner


ServerDep = Annotated[Server, Depends(get_server)]
Owner = Annotated[str, Depends(get_owner)]
