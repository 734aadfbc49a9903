"""FastAPI dependencies: the server, and the caller's key id (checked on every request).

The key arrives as ``X-API-Key`` (what the tinker SDK sends) or as a bearer token. Only its
id leaves this function: the key itself is never stored, logged or put in an event.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from kitchen.serve.errors import unauthorized
from kitchen.serve.server import Server


def get_server(request: Request) -> Server:
    server: Server = request.app.state.server
    return server


def get_owner(
    request: Request,
    x_api_key: Annotated[str | None, Header(alias="X-API-Key", max_length=300)] = None,
) -> str:
    key = x_api_key
    auth = request.headers.get("authorization", "")
    if key is None and auth.lower().startswith("bearer "):
        key = auth[7:].strip()
    owner = get_server(request).keys.owner_of(key)
    if owner is None:
        raise unauthorized()
    return owner


ServerDep = Annotated[Server, Depends(get_server)]
Owner = Annotated[str, Depends(get_owner)]
