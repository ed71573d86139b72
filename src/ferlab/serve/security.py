"""The optional API key: compared in constant time, asked for in the ``X-API-Key`` header."""

from __future__ import annotations

import secrets

from fastapi import Request, Security
from fastapi.security import APIKeyHeader

from ferlab.serve.errors import ApiError
from ferlab.serve.settings import API_KEY_HEADER

__all__ = ["key_matches", "require_api_key"]

_header = APIKeyHeader(name=API_KEY_HEADER, auto_error=False, description="The server's API key.")


def key_matches(expected: str | None, supplied: str | None) -> bool:
    """Whether ``supplied`` opens a server whose key is ``expected`` (no key: always)."""
    if expected is None:
        return True
    return supplied is not None and secrets.compare_digest(supplied.encode(), expected.encode())


async def require_api_key(request: Request, supplied: str | None = Security(_header)) -> None:
    """Dependency of the ``/v1`` routes: 401 unless the request carries the server's key."""
    expected = request.app.state.service.settings.api_key
    if not key_matches(expected, supplied):
        problem = "missing" if supplied is None else "wrong"
        raise ApiError(401, f"{problem} API key: send it in the {API_KEY_HEADER} header")
