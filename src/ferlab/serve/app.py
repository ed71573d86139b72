"""The FastAPI application: :func:`create_app` wires the service, its routes and the page."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from fastapi import FastAPI

from ferlab import __version__
from ferlab.serve import api, stream
from ferlab.serve.errors import install_error_handlers
from ferlab.serve.middleware import HostOriginGuard
from ferlab.serve.pages import install_pages
from ferlab.serve.service import Service
from ferlab.serve.settings import ServeSettings

if TYPE_CHECKING:
    from ferlab.recognize import EmotionClassifier, Recognizer

__all__ = ["create_app"]

_DESCRIPTION = """Facial emotion recognition over HTTP.

* `POST /v1/predict`: the faces of one photo, as `ferlab predict --json` prints them.
* `WS /v1/stream`: camera frames in, tracked faces, smoothed emotions and a light colour out.
* `GET /v1/models`, `GET /v1/light`: the model and the ambient light's colours.

Errors are JSON `{"error": code, "message": text}`. When the server has an API key, `/v1`
routes want it in the `X-API-Key` header (the stream also takes it as its first message).
"""


def create_app(
    model: str | EmotionClassifier = "default",
    *,
    recognizer: Recognizer | None = None,
    settings: ServeSettings | None = None,
    detector: str = "haar",
    device: str = "auto",
    runtime: str = "auto",
    smoothing: float = 0.5,
) -> FastAPI:
    """Build the service's application (run it with uvicorn, or ``ferlab serve``).

    Args:
        model: a name or checkpoint path for ``ferlab.load_model``, or a classifier object;
            loaded once, when the application starts (its lifespan).
        recognizer: a ready :class:`~ferlab.recognize.Recognizer` to use instead of building
            one from ``model``, ``detector``, ``device``, ``runtime`` and ``smoothing``.
        settings: limits, API key and light settings (:class:`ServeSettings`); run the
            application with :func:`ferlab.serve.server_config` for the connection limits.
        smoothing: weight of the newest frame in each streamed face's moving average.
    """
    settings = settings or ServeSettings()
    # A ready recognizer is checked against the settings now, so that a mistake (a light colour
    # for an emotion the model lacks) is an error here rather than a failed server start.
    ready = Service(recognizer, settings) if recognizer is not None else None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from ferlab.recognize import Recognizer

        service = ready or Service(
            Recognizer(
                detector=detector,
                model=model,
                device=device,
                runtime=runtime,
                smoothing=smoothing,
            ),
            settings,
        )
        app.state.service = service
        app.state.stream_places = stream.StreamPlaces(settings)
        service.open()
        try:
            yield
        finally:
            service.close()

    app = FastAPI(
        title="ferlab",
        version=__version__,
        description=_DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    # What server_config needs to bound connections before any request reaches the app.
    app.state.settings = settings
    install_error_handlers(app)
    app.add_middleware(HostOriginGuard, allowed_hosts=settings.allowed_hosts)

    app.include_router(api.router)
    app.include_router(stream.router)
    install_pages(app)
    return app
