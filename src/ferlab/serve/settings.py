"""Settings of the web service, in one frozen object that the command line and Python share."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ferlab.errors import FerlabError

__all__ = ["API_KEY_ENV", "API_KEY_HEADER", "ServeSettings"]

#: Environment variable ``ferlab serve`` reads the API key from when ``--api-key`` is not given.
API_KEY_ENV = "FERLAB_API_KEY"
#: Request header that carries the API key.
API_KEY_HEADER = "X-API-Key"


@dataclass(frozen=True)
class ServeSettings:
    """How ``ferlab serve`` bounds and shapes its work.

    Attributes:
        max_upload_bytes: largest request body ``/v1/predict`` reads (413 beyond it), and the
            largest WebSocket frame.
        api_key: when set, every ``/v1`` route wants it in the ``X-API-Key`` header (the
            WebSocket, which browsers cannot give headers, also in the ``api_key`` query
            parameter); ``/``, ``/health`` and ``/docs`` stay open.
        max_pending: requests and stream frames waiting for or in recognition at once; beyond
            it requests get 503 and stream frames are dropped, so a flood cannot queue up
            unbounded work.
        max_streams: WebSocket streams open at once (more are closed with code 1013).
        light_colors: emotion colours replacing those of ``ferlab.light.DEFAULT_COLORS``.
        light_tau: time constant of the light's smoothing, in seconds.
        webhook_url: also POST each stream's light colour to this URL.
        webhook_interval: least seconds between two webhook POSTs.
    """

    max_upload_bytes: int = 10 * 2**20
    api_key: str | None = None
    max_pending: int = 32
    max_streams: int = 8
    light_colors: Mapping[str, tuple[int, int, int]] = field(default_factory=dict)
    light_tau: float = 1.0
    webhook_url: str | None = None
    webhook_interval: float = 0.5

    def __post_init__(self) -> None:
        for name in ("max_upload_bytes", "max_pending", "max_streams"):
            if getattr(self, name) < 1:
                raise FerlabError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.api_key is not None and not self.api_key.strip():
            raise FerlabError("the API key must not be empty")
