"""Every error the service answers is JSON ``{"error": code, "message": sentence}``.

Handlers registered by :func:`install_error_handlers` turn FastAPI's validation errors, HTTP
errors (404, 405, ...), ferlab's own errors and anything unexpected into that shape. An
unexpected exception is logged on the server with its traceback; the client only learns that
the server failed, never the trace.
"""

from __future__ import annotations

import logging
from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from ferlab.errors import FerlabError

__all__ = ["INTERNAL_ERROR", "ApiError", "ErrorBody", "install_error_handlers"]

log = logging.getLogger("ferlab.serve")

#: All a client learns of an unexpected failure.
INTERNAL_ERROR = "internal server error (the server log has the details)"

#: Short machine-readable codes of the statuses the service uses.
_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "too_many_requests",
    500: "internal_error",
    501: "not_implemented",
    503: "busy",
}


class ErrorBody(BaseModel):
    """The body of every error response."""

    error: str
    message: str


class ApiError(Exception):
    """An error answered with ``status`` and a message for the client.

    ``code`` overrides the short code that goes with the status (``invalid_image`` for a 422
    about the upload's content, say).
    """

    def __init__(self, status: int, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code or _CODES.get(status, HTTPStatus(status).phrase.lower().replace(" ", "_"))


def error_response(status: int, message: str, code: str | None = None) -> JSONResponse:
    err = ApiError(status, message, code)
    headers = {"Retry-After": "1"} if status == 503 else None
    if status == 408:  # the rest of the request never came: this connection is done
        headers = {"Connection": "close"}
    return JSONResponse(
        ErrorBody(error=err.code, message=message).model_dump(), status, headers=headers
    )


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for item in exc.errors():
        where = ".".join(str(p) for p in item.get("loc", ()) if p != "body")
        parts.append(f"{where}: {item.get('msg', 'invalid')}" if where else item.get("msg", ""))
    return "; ".join(parts) or "invalid request"


def install_error_handlers(app: FastAPI) -> None:
    """Register the JSON error handlers on ``app``."""

    @app.exception_handler(ApiError)
    async def _api(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.message, exc.code)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
        if exc.status_code == 404:
            message = f"no route {request.url.path}"
        return error_response(exc.status_code, message)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(422, _validation_message(exc))

    @app.exception_handler(FerlabError)
    async def _ferlab(request: Request, exc: FerlabError) -> JSONResponse:
        # Input problems are caught where they arise and answered as 4xx; one reaching here
        # comes from the server's own side (the model, its settings).
        log.error("request %s failed: %s", request.url.path, exc)
        return error_response(500, str(exc))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error in %s", request.url.path)
        return error_response(500, INTERNAL_ERROR)
