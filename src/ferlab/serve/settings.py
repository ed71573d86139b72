"""Settings of the web service, in one frozen object that the command line and Python share."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from ferlab.errors import FerlabError

__all__ = ["API_KEY_ENV", "API_KEY_HEADER", "ServeSettings", "usable_cores"]

#: Environment variable ``ferlab serve`` reads the API key from when no key option is given.
API_KEY_ENV = "FERLAB_API_KEY"
#: Request header that carries the API key.
API_KEY_HEADER = "X-API-Key"


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


@dataclass(frozen=True)
class ServeSettings:
    """How ``ferlab serve`` bounds and shapes its work (``docs/serve.md``, "Limits").

    Attributes:
        max_upload_bytes: largest request body ``/v1/predict`` reads (413 beyond it), and the
            largest WebSocket frame.
        max_pixels: pixel budget of one decoded image. A larger JPEG is decoded reduced (by 2,
            4 or 8, while its header is read) to fit; any other larger image is refused (413)
            before a pixel is decoded.
        api_key: when set, every ``/v1`` route wants it in the ``X-API-Key`` header; the
            WebSocket (browsers cannot give it headers) also takes it as its first message
            ``{"type": "auth", "api_key": ...}``. Never in a URL. ``/``, ``/health`` and
            ``/docs`` stay open.
        max_pending: requests and stream frames waiting for or in recognition at once; beyond
            it requests get 503 and stream frames are dropped, so a flood cannot queue up
            unbounded work.
        workers: recognition threads, each with its own face detector (``None``: one per
            usable core).
        batch: merge the faces that concurrent requests send to the classifier into one call.
        max_connections: connections held at once (also bounded by the open-file limit).
            A new connection beyond it closes the oldest one that has no request under way, or
            is refused with 503 when every connection is busy.
        header_timeout: seconds a connection may take to send a request's headers (counted
            from its opening, or from the previous answer); it is then closed with 408.
        body_timeout: seconds a request may take to send its body (408 beyond).
        max_streams: WebSocket streams open at once.
        max_streams_per_client: streams open at once from one client address.
        stream_idle_timeout: a stream that sends no frame for this many seconds is closed.
        stream_wait: a new stream finding no free slot waits this long for one (an idle stream
            gives its slot up after :data:`~ferlab.serve.stream.YIELD_AFTER` seconds) before
            it is refused with code 1013.
        allowed_hosts: host names (besides the loopback names and the bound address) that the
            ``Host`` and ``Origin`` headers may name; anything else gets 403, which shuts out
            DNS rebinding and other web pages driving the service.
        light_colors: emotion colours replacing those of ``ferlab.light.DEFAULT_COLORS``.
        light_tau: time constant of the light's smoothing, in seconds.
        webhook_url: also POST each stream's light colour to this URL.
        webhook_interval: least seconds between two webhook POSTs.
    """

    max_upload_bytes: int = 10 * 2**20
    max_pixels: int = 16_000_000
    api_key: str | None = None
    max_pending: int = 32
    workers: int | None = None
    batch: bool = False
    max_connections: int = 4096
    header_timeout: float = 20.0
    body_timeout: float = 60.0
    max_streams: int = 8
    max_streams_per_client: int = 4
    stream_idle_timeout: float = 30.0
    stream_wait: float = 30.0
    allowed_hosts: tuple[str, ...] = ()
    light_colors: Mapping[str, tuple[int, int, int]] = field(default_factory=dict)
    light_tau: float = 1.0
    webhook_url: str | None = None
    webhook_interval: float = 0.5

    def __post_init__(self) -> None:
        for name in (
            "max_upload_bytes",
            "max_pixels",
            "max_pending",
            "max_connections",
            "max_streams",
            "max_streams_per_client",
        ):
            if getattr(self, name) < 1:
                raise FerlabError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.workers is not None and self.workers < 1:
            raise FerlabError(f"workers must be at least 1, got {self.workers}")
        for name in ("header_timeout", "body_timeout", "stream_idle_timeout", "stream_wait"):
            if not getattr(self, name) > 0:
                raise FerlabError(f"{name} must be more than 0 seconds, got {getattr(self, name)}")
        if self.api_key is not None and not self.api_key.strip():
            raise FerlabError("the API key must not be empty")
        object.__setattr__(self, "allowed_hosts", tuple(h.lower() for h in self.allowed_hosts))

    @property
    def worker_count(self) -> int:
        return self.workers or usable_cores()
