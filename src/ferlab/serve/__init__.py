"""ferlab's web service: a REST API, a live WebSocket stream and a web page (``ferlab serve``).

>>> from ferlab.serve import create_app, ServeSettings
>>> app = create_app("default", settings=ServeSettings(api_key="secret"))  # doctest: +SKIP
>>> uvicorn.Server(server_config(app, port=8000)).run()  # doctest: +SKIP

Run it with ``uvicorn`` or ``ferlab serve``; ``docs/serve.md`` describes the routes, the page,
the ambient light and the safety limits. Needs the ``serve`` extra (FastAPI, uvicorn).
"""

from ferlab.serve.app import create_app
from ferlab.serve.server import raise_fd_limit, server_config
from ferlab.serve.settings import API_KEY_ENV, API_KEY_HEADER, ServeSettings

__all__ = [
    "API_KEY_ENV",
    "API_KEY_HEADER",
    "ServeSettings",
    "create_app",
    "raise_fd_limit",
    "server_config",
]
