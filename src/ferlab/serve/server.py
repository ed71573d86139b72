"""Running the application with uvicorn under connection limits that hostile clients cannot pass.

uvicorn alone waits forever for a request's headers and accepts connections until the process
runs out of file descriptors. :func:`server_config` adds, below the application:

* a **header timeout**: a connection that has not sent a complete request head
  ``header_timeout`` seconds after it opened (or after its previous answer) gets a JSON 408 and
  is closed;
* a **connection cap**: at most ``max_connections`` connections, and never more than the
  open-file limit leaves room for; a new connection beyond the cap closes the oldest connection
  that has no request under way (a stalled or idle one; not one whose request has arrived
  unread), and when every connection is busy the newcomer gets a JSON 503 instead;
* **JSON** for the 400 that uvicorn answers in plain text to a malformed request;
* **logs that stay bounded and keep no secret**: key-like query parameters are redacted from
  every logged URL, and repeated event-loop errors (the accept loop's "Too many open files")
  are logged once per :data:`REPEAT_WINDOW` seconds with a count.

:func:`raise_fd_limit` lifts the process's soft open-file limit to its hard limit first.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import itertools
import json
import logging
import re
import sys
import time
from collections import OrderedDict
from http import HTTPStatus
from typing import Any

import uvicorn
from uvicorn.config import LOGGING_CONFIG

try:
    import fcntl
    import termios
except ImportError:  # Windows: no look at unread bytes, the oldest waiting one goes
    fcntl = termios = None  # type: ignore[assignment]

from ferlab.serve.settings import ServeSettings

__all__ = [
    "ConnectionGuard",
    "RedactSecrets",
    "fd_limit",
    "raise_fd_limit",
    "redact",
    "server_config",
]

log = logging.getLogger("ferlab.serve")

#: File descriptors kept out of the connection cap: the model, logs, sockets of the page's own
#: requests, libraries' files.
FD_RESERVE = 128
#: Waiting connections looked at, oldest first, for one to close when the cap is reached.
EVICTION_LOOKAHEAD = 64
#: A repeated event-loop error is logged at most once in this many seconds.
REPEAT_WINDOW = 10.0
#: Query parameters whose name contains one of these words have their value redacted in logs.
_SECRET_PARAM = re.compile(
    r"([?&][^=&\s\"]*(?:key|token|secret|passw|auth|sig)[^=&\s\"]*=)[^&\s\"]*", re.IGNORECASE
)


def redact(text: str) -> str:
    """``text`` with the value of every key-like query parameter replaced by ``[redacted]``."""
    return _SECRET_PARAM.sub(r"\1[redacted]", text)


class RedactSecrets(logging.Filter):
    """Logging filter: redacts key-like query parameters in a record's message and arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and "?" in record.msg:
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(
                redact(a) if isinstance(a, str) and "?" in a else a for a in record.args
            )
        return True


class _OncePerWindow(logging.Filter):
    """Logging filter: lets one record of each message through per window, with a count."""

    def __init__(self, window: float = REPEAT_WINDOW) -> None:
        super().__init__()
        self.window = window
        self.seen: dict[str, tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = str(record.msg)[:200]
        now = time.monotonic()
        last, suppressed = self.seen.get(key, (-self.window, 0))
        if now - last < self.window:
            self.seen[key] = (last, suppressed + 1)
            return False
        self.seen[key] = (now, 0)
        if suppressed:
            record.msg = f"{record.msg} (and {suppressed} more times in {self.window:g} s)"
        record.exc_info = None  # the first traceback of a kind says it all
        return True


def fd_limit() -> int | None:
    """The soft limit of open files, or ``None`` where the platform has none."""
    try:
        import resource
    except ImportError:
        return None
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def raise_fd_limit() -> int | None:
    """Lift the soft open-file limit to the hard one where allowed; the limit now in force."""
    try:
        import resource
    except ImportError:
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
        with contextlib.suppress(ValueError, OSError):  # not allowed here: keep the soft limit
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def _unread(transport: asyncio.BaseTransport) -> bool:
    """Whether bytes wait in the connection's socket that the event loop has not read yet."""
    sock = transport.get_extra_info("socket")
    if sock is None or fcntl is None:
        return False
    try:
        waiting = fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0\0\0\0")
    except OSError:
        return False
    return int.from_bytes(waiting, sys.byteorder) > 0


def _raw_json(status: int, code: str, message: str) -> bytes:
    """A complete HTTP/1.1 response that closes the connection, written below the application."""
    body = json.dumps({"error": code, "message": message}).encode()
    head = (
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n"
        "content-type: application/json\r\n"
        f"content-length: {len(body)}\r\n"
        "connection: close\r\n\r\n"
    )
    return head.encode("latin-1") + body


class ConnectionGuard:
    """Connections of one server: their count, and which of them wait for a request head.

    ``waiting`` holds, oldest first, the connections with no request under way and the time
    they started waiting; it is what the header timeout sweeps and what the cap evicts from.
    """

    def __init__(self, max_connections: int, header_timeout: float) -> None:
        self.max_connections = max_connections
        self.header_timeout = header_timeout
        self.live: set[asyncio.BaseTransport] = set()
        self.waiting: OrderedDict[Any, float] = OrderedDict()
        self.evicted = self.refused = self.timed_out = 0
        self._sweeper: asyncio.TimerHandle | None = None

    def opened(self, protocol: Any) -> bool:
        """Count a new connection; ``False`` when it was refused (the cap, all busy)."""
        self._start_sweeping()
        if len(self.live) >= self.max_connections:
            oldest = self._evictable()
            if oldest is not None:
                del self.waiting[oldest]
                self._drop(oldest.transport)
                oldest.transport.close()
                self.evicted += 1
            else:
                self.refused += 1
                protocol.transport.write(
                    _raw_json(
                        503,
                        "busy",
                        f"server at its limit of {self.max_connections} connections, none "
                        "of them idle; retry in a moment",
                    )
                )
                protocol.transport.close()
                return False
        self.live.add(protocol.transport)
        self.waiting[protocol] = time.monotonic()
        return True

    def _evictable(self) -> Any | None:
        """The oldest waiting connection, passing over those whose request has arrived but not
        been read yet (a flood accepted in one pass of the event loop must not push them out)."""
        first = None
        for protocol in itertools.islice(self.waiting, EVICTION_LOOKAHEAD):
            first = first or protocol
            if not _unread(protocol.transport):
                return protocol
        return first

    def busy(self, protocol: Any) -> None:
        self.waiting.pop(protocol, None)

    def idle(self, protocol: Any) -> None:
        self.waiting.pop(protocol, None)
        if not protocol.transport.is_closing():
            self.waiting[protocol] = time.monotonic()

    def _drop(self, transport: asyncio.BaseTransport) -> None:
        self.live.discard(transport)

    def closed(self, protocol: Any) -> None:
        self.waiting.pop(protocol, None)
        self._drop(protocol.transport)

    def _start_sweeping(self) -> None:
        if self._sweeper is None:
            loop = asyncio.get_running_loop()
            self._sweeper = loop.call_later(1.0, self._sweep, loop)

    def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        deadline = time.monotonic() - self.header_timeout
        while self.waiting:
            protocol, since = next(iter(self.waiting.items()))
            if since > deadline:
                break
            self.waiting.popitem(last=False)
            self.timed_out += 1
            transport = protocol.transport
            if not transport.is_closing():
                message = f"no complete request head within {self.header_timeout:g} s"
                transport.write(_raw_json(408, "request_timeout", message))
                transport.close()
            self._drop(transport)
        self._sweeper = None if loop.is_closed() else loop.call_later(1.0, self._sweep, loop)


def _guarded_http(base: type, guard: ConnectionGuard) -> type:
    """``base`` (uvicorn's HTTP protocol) reporting to ``guard`` and answering 400 in JSON."""

    class Guarded(base):  # type: ignore[misc, valid-type]
        def connection_made(self, transport: asyncio.Transport) -> None:
            super().connection_made(transport)
            if not guard.opened(self):
                self.connections.discard(self)

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            upgraded = self.transport.get_protocol() is not self
            if upgraded or (self.cycle is not None and not self.cycle.response_complete):
                guard.busy(self)

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if self.cycle is None or self.cycle.response_complete:
                guard.idle(self)

        def connection_lost(self, exc: Exception | None) -> None:
            guard.closed(self)
            super().connection_lost(exc)

        def send_400_response(self, msg: str) -> None:
            self.transport.write(_raw_json(400, "bad_request", f"malformed HTTP request: {msg}"))
            self.transport.close()

    Guarded.__name__ = Guarded.__qualname__ = f"Guarded{base.__name__}"
    return Guarded


def _guarded_ws(base: type, guard: ConnectionGuard) -> type:
    """``base`` (uvicorn's WebSocket protocol) that frees its connection's place on close."""

    class Guarded(base):  # type: ignore[misc, valid-type]
        def connection_lost(self, exc: Exception | None) -> None:
            guard._drop(self.transport)
            super().connection_lost(exc)

    Guarded.__name__ = Guarded.__qualname__ = f"Guarded{base.__name__}"
    return Guarded


def _log_config(log_level: str) -> dict[str, Any]:
    config = copy.deepcopy(LOGGING_CONFIG)
    config["filters"] = {"redact": {"()": RedactSecrets}}
    for name in ("uvicorn.error", "uvicorn.access"):  # the loggers that print request URLs
        config["loggers"][name]["filters"] = ["redact"]
    config["loggers"]["ferlab.serve"] = {"handlers": ["default"], "level": log_level.upper()}
    return config


def server_config(
    app: Any,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    log_level: str = "warning",
    settings: ServeSettings | None = None,
) -> uvicorn.Config:
    """uvicorn's configuration for ``app`` with the limits of ``settings`` (see the module).

    ``settings`` defaults to those the application was created with. The connection cap is
    lowered to what the open-file limit in force leaves room for.
    """
    settings = settings or app.state.settings
    limit = fd_limit()
    cap = settings.max_connections
    if limit is not None:
        cap = max(1, min(cap, limit - FD_RESERVE))
    guard = ConnectionGuard(cap, settings.header_timeout)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        log_config=_log_config(log_level),
        # Frames up to twice the limit get an error message; larger ones close the stream (1009).
        ws_max_size=2 * settings.max_upload_bytes,
        timeout_graceful_shutdown=5,
    )
    config.load()
    config.http_protocol_class = _guarded_http(config.http_protocol_class, guard)
    if config.ws_protocol_class is not None:
        config.ws_protocol_class = _guarded_ws(config.ws_protocol_class, guard)
    config.guard = guard  # type: ignore[attr-defined]
    loop_log = logging.getLogger("asyncio")
    if not any(isinstance(f, _OncePerWindow) for f in loop_log.filters):
        loop_log.addFilter(_OncePerWindow())
    return config
