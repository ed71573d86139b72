"""The web page at ``/``, its assets, and the API docs at ``/docs``, all served locally.

The page's HTML, JavaScript and CSS live in ``ferlab/serve/static`` and load nothing from
elsewhere; a Content-Security-Policy header holds the page to that (every other HTML answer
gets it from :mod:`ferlab.serve.middleware`). ``/docs`` is Swagger UI from the
``swagger-ui-bundle-v2`` package when it is installed (its JavaScript and CSS are then served
from ``/docs-assets``), and FastAPI's usual CDN-hosted page otherwise; its policy allows its one
inline script by hash.
"""

from __future__ import annotations

import base64
import hashlib
import re
from importlib import resources
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles

from ferlab.serve.middleware import PAGE_POLICY

__all__ = ["STATIC", "install_pages"]

#: Folder of the page's assets inside the installed package.
STATIC = Path(str(resources.files("ferlab.serve") / "static"))

_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)


def _docs_policy(html: str, assets: str) -> str:
    """Swagger UI's policy: its assets' origin, and its inline start-up script by SHA-256."""
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(s.encode()).digest()).decode() + "'"
        for s in _INLINE_SCRIPT.findall(html)
    )
    return (
        f"default-src 'self'; script-src {assets} {hashes}; style-src {assets}; "
        f"img-src 'self' data: {assets}; object-src 'none'; base-uri 'none'; "
        "frame-ancestors 'none'"
    )


def install_pages(app: FastAPI) -> None:
    """Add ``/``, ``/static/*`` and ``/docs`` to ``app``."""
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(
            STATIC / "index.html",
            media_type="text/html",
            headers={"Content-Security-Policy": PAGE_POLICY, "Cache-Control": "no-cache"},
        )

    try:
        from swagger_ui_bundle import swagger_ui_path
    except ImportError:
        swagger_ui_path = None
    if swagger_ui_path is not None:
        app.mount("/docs-assets", StaticFiles(directory=swagger_ui_path), name="docs-assets")
        js, css = "/docs-assets/swagger-ui-bundle.js", "/docs-assets/swagger-ui.css"
        assets = "'self'"
    else:
        js = css = None
        assets = "'self' https://cdn.jsdelivr.net"

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        extra = {"swagger_js_url": js, "swagger_css_url": css} if js else {}
        page = get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title="ferlab API",
            swagger_favicon_url="/static/favicon.svg",
            **extra,
        )
        page.headers["Content-Security-Policy"] = _docs_policy(page.body.decode(), assets)
        return page
