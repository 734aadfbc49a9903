"""The one error the routers raise, and the SDK's error shape it becomes.

The tinker SDK reads a failed request as ``{"error": message, "category": "user"|"server"|
"unknown"}`` (``RequestFailedResponse``); HTTP errors carry the same body, so a client sees
one clear line whatever went wrong. Status codes follow what the SDK retries: 4xx (but 408,
409, 429) are final, 5xx and connection errors are retried. A request the server cannot put on
record because of a fault of the machine (a full or read-only disk, the database unreachable)
gets 503 with ``Retry-After``: it was not acknowledged, and its retry is recorded once the fault
is gone.
"""

from __future__ import annotations

from typing import Literal

Category = Literal["user", "server", "unknown"]


class ApiError(Exception):
    """An HTTP error with the SDK's body shape; raised anywhere below a router."""

    def __init__(
        self,
        status: int,
        message: str,
        category: Category = "user",
        *,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.category: Category = category
        self.retry_after = retry_after

    def body(self) -> dict[str, str]:
        return {"error": self.message, "category": self.category}


def bad_request(message: str) -> ApiError:
    return ApiError(400, message)


def not_found(what: str) -> ApiError:
    """404 for anything missing *or* owned by another key: the two must look the same."""
    return ApiError(404, f"{what} not found")


def unauthorized(message: str = "missing or invalid API key: set TINKER_API_KEY") -> ApiError:
    return ApiError(401, message)


RETRY_AFTER_S = 2
"""What a 503 for a fault of the machine asks the client to wait (the SDK honours
``Retry-After`` up to 60 s, and retries 408, 409, 429 and every 5xx)."""


def unavailable(fault: str) -> ApiError:
    """503 for a fault of the machine (a full or read-only disk, the database unreachable):
    nothing was recorded, nothing is acknowledged, and the SDK sends the same request again.
    ``fault`` is the fault's one line; its advice to the operator (after the last ``; ``) is
    not the client's business."""
    what = fault.rsplit("; ", 1)[0]
    return ApiError(503, f"{what} (the server did not record this request; retry)", "server")


def not_implemented(what: str) -> ApiError:
    """404, not 501: the SDK retries every 5xx for minutes, and a missing feature must fail
    at once rather than look like a hang."""
    return ApiError(404, f"{what} is not implemented by kitchen serve")
