"""The checks and headers every HTTP answer and WebSocket handshake of the service goes through.

:class:`HostOriginGuard` is a plain ASGI middleware, so it sees WebSocket handshakes as well as
HTTP requests, before any route:

* **Host allow-list.** The ``Host`` header, when there is one (HTTP/1.1 requires it), must be
  an IP address, ``localhost`` (or a name under ``.localhost``) or one of
  ``ServeSettings.allowed_hosts``. A DNS-rebinding page, whose
  requests carry its own domain name as ``Host``, gets 403: it can neither read answers nor
  drive the stream.
* **Origin check.** A browser request carrying an ``Origin`` must come from the page this
  server serves (same scheme-less host and port as ``Host``) or from one of
  ``allowed_hosts``; another web page the user visits gets 403.
* **Headers.** Every answer gets ``X-Content-Type-Options: nosniff``; every HTML answer
  without a ``Content-Security-Policy`` of its own (``/static/index.html``, say) gets the
  page's policy.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import urlsplit

from starlette.websockets import WebSocket

from ferlab.serve.errors import error_response

__all__ = ["PAGE_POLICY", "HostOriginGuard", "host_allowed"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

#: Only the server's own scripts, styles, images and sockets; camera frames come from the page.
PAGE_POLICY = (
    "default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob: mediastream:; "
    "connect-src 'self'; style-src 'self'; script-src 'self'; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'none'"
)


def _hostname(host: str) -> str:
    """The name or address in a ``Host`` value, without port or IPv6 brackets, lower case."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def host_allowed(host: str, extra: tuple[str, ...] = ()) -> bool:
    """Whether a ``Host`` header may reach the service (see the module)."""
    name = _hostname(host)
    if not name:
        return False
    if name == "localhost" or name.endswith(".localhost") or name in extra:
        return True
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class HostOriginGuard:
    """ASGI middleware: the Host and Origin checks and the common headers (see the module)."""

    def __init__(self, app: Callable[..., Awaitable[None]], allowed_hosts: tuple[str, ...]):
        self.app = app
        self.allowed_hosts = allowed_hosts

    def refusal(self, scope: Scope) -> tuple[str, str] | None:
        """``(code, message)`` of why the request is refused, or ``None``."""
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        host = headers.get("host")
        if host is None:  # HTTP/1.0 without one: no browser, no rebinding; same-origin check
            host = ""
        elif not host_allowed(host, self.allowed_hosts):
            return (
                "forbidden_host",
                f"Host {host[:100]!r} is not one this server answers to (start it with "
                "--allow-host NAME to add a name)",
            )
        origin = headers.get("origin")
        if origin is None:
            return None
        parts = urlsplit(origin)
        same = parts.scheme in ("http", "https") and parts.netloc.lower() == host.lower()
        if not same and (parts.hostname or "") not in self.allowed_hosts:
            return (
                "forbidden_origin",
                f"requests from the web page at {origin[:100]!r} are not allowed (start the "
                "server with --allow-host NAME to allow that page's host)",
            )
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        refused = self.refusal(scope)
        if refused is not None:
            response = error_response(403, refused[1], refused[0])
            if scope["type"] == "http":
                await response(scope, receive, send)
                return
            ws = WebSocket(scope, receive, send)
            if "websocket.http.response" in scope.get("extensions", {}):
                await ws.send_denial_response(response)
            else:
                await ws.close(1008, refused[1][:120])
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {k.lower() for k, _ in headers}
                if b"x-content-type-options" not in names:
                    headers.append((b"x-content-type-options", b"nosniff"))
                ctype = dict(headers).get(b"content-type", b"")
                if ctype.startswith(b"text/html") and b"content-security-policy" not in names:
                    headers.append((b"content-security-policy", PAGE_POLICY.encode()))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)
