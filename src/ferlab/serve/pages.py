"""The web page at ``/``, its assets, and the API docs at ``/docs``, all served locally.

The page's HTML, JavaScript and CSS live in ``ferlab/serve/static`` and load nothing from
elsewhere; a Content-Security-Policy header holds the page to that. ``/docs`` is Swagger UI from
the ``swagger-ui-bundle-v2`` package when it is installed (its JavaScript and CSS are then
served from ``/docs-assets``), and FastAPI's usual CDN-hosted page otherwise.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles

__all__ = ["STATIC", "install_pages"]

#: Folder of the page's assets inside the installed package.
STATIC = Path(str(resources.files("ferlab.serve") / "static"))

#: Only the server's own scripts, styles, images and sockets; camera frames come from the page.
_PAGE_POLICY = (
    "default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob: mediastream:; "
    "connect-src 'self' ws: wss:; style-src 'self'; script-src 'self'; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'none'"
)


def install_pages(app: FastAPI) -> None:
    """Add ``/``, ``/static/*`` and ``/docs`` to ``app``."""
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(
            STATIC / "index.html",
            media_type="text/html",
            headers={"Content-Security-Policy": _PAGE_POLICY, "Cache-Control": "no-cache"},
        )

    try:
        from swagger_ui_bundle import swagger_ui_path
    except ImportError:
        swagger_ui_path = None
    if swagger_ui_path is not None:
        app.mount("/docs-assets", StaticFiles(directory=swagger_ui_path), name="docs-assets")
        js, css = "/docs-assets/swagger-ui-bundle.js", "/docs-assets/swagger-ui.css"
    else:
        js = css = None

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        extra = {"swagger_js_url": js, "swagger_css_url": css} if js else {}
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title="ferlab API",
            swagger_favicon_url="/static/favicon.svg",
            **extra,
        )
