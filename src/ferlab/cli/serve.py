"""``ferlab serve`` (web page, REST API, WebSocket stream) and ``ferlab light`` (ambient light).

* ``serve`` loads the model once and runs the FastAPI application of :mod:`ferlab.serve` with
  uvicorn, on localhost unless ``--host`` says otherwise.
* ``light`` reads a camera (or a video read like one) without any page and sends the smoothed
  emotion colour to stdout as JSON lines or to a webhook (a smart-light bridge).

See ``docs/serve.md``.
"""

from __future__ import annotations

import ipaddress
from typing import Annotated

import typer
from rich.console import Console

from ferlab.cli.predict import (
    CameraOption,
    DetectorOption,
    DeviceOption,
    FramesOption,
    ModelOption,
    RuntimeOption,
    SmoothingOption,
    StreamTtaOption,
    TtaOption,
    _recognizer,
)
from ferlab.errors import FerlabError

_err = Console(stderr=True, highlight=False, soft_wrap=True)

ColorOption = Annotated[
    list[str] | None,
    typer.Option(
        "--color",
        metavar="EMOTION=#RRGGBB",
        help="Light colour of an emotion (repeatable), replacing its default.",
    ),
]
TauOption = Annotated[
    float,
    typer.Option(
        "--light-tau",
        metavar="SECONDS",
        min=0.0,
        help="Time constant of the light's smoothing (0 = follow every frame).",
    ),
]
IntervalOption = Annotated[
    float,
    typer.Option(
        "--webhook-interval",
        metavar="SECONDS",
        min=0.0,
        help="Least time between two webhook POSTs.",
    ),
]


def register(app: typer.Typer) -> None:
    """Add ``serve`` and ``light`` to the ``ferlab`` command."""
    app.command("serve")(serve)
    app.command("light")(light)


def _need_serve_extra() -> None:
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise FerlabError(
            f"ferlab serve needs the serve extra ({exc.name} is missing): "
            "pip install 'ferlab[serve]'"
        ) from None


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(
    host: Annotated[
        str, typer.Option("--host", help="Address to listen on (localhost only by default).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="TCP port.")] = 8000,
    model: ModelOption = "default",
    detector: DetectorOption = "haar",
    device: DeviceOption = "auto",
    runtime: RuntimeOption = "auto",
    tta: TtaOption = None,
    api_key: Annotated[
        str | None,
        typer.Option(
            "--api-key",
            envvar="FERLAB_API_KEY",
            show_envvar=True,
            help="Require this key in the X-API-Key header of /v1 requests.",
        ),
    ] = None,
    max_upload_mb: Annotated[
        float,
        typer.Option("--max-upload-mb", min=0.01, help="Largest upload or stream frame, MiB."),
    ] = 10.0,
    max_pending: Annotated[
        int,
        typer.Option("--max-pending", min=1, help="Requests waiting for recognition (503 above)."),
    ] = 32,
    max_streams: Annotated[
        int, typer.Option("--max-streams", min=1, help="WebSocket streams open at once.")
    ] = 8,
    smoothing: SmoothingOption = 0.5,
    color: ColorOption = None,
    light_tau: TauOption = 1.0,
    webhook: Annotated[
        str | None,
        typer.Option("--webhook", metavar="URL", help="Also POST stream light colours here."),
    ] = None,
    webhook_interval: IntervalOption = 0.5,
    log_level: Annotated[
        str, typer.Option("--log-level", help="uvicorn's log level (info logs every request).")
    ] = "warning",
) -> None:
    """Serve the web page, the REST API and the live WebSocket stream."""
    _need_serve_extra()
    import uvicorn

    from ferlab.light import parse_color_overrides
    from ferlab.serve import ServeSettings, create_app

    settings = ServeSettings(
        max_upload_bytes=int(max_upload_mb * 2**20),
        api_key=api_key,
        max_pending=max_pending,
        max_streams=max_streams,
        light_colors=parse_color_overrides(color or []),
        light_tau=light_tau,
        webhook_url=webhook,
        webhook_interval=webhook_interval,
    )
    # Loaded here rather than in the app's lifespan so that a bad model name is one clear line.
    rec = _recognizer(model, detector, device, runtime, tta, smoothing=smoothing)
    app = create_app(recognizer=rec, settings=settings)
    if not _is_loopback(host) and api_key is None:
        _err.print(
            f"[yellow]warning:[/] listening on {host} without an API key: anyone who can reach "
            "this machine can use the model (set --api-key or FERLAB_API_KEY)"
        )
    shown = f"[{host}]" if ":" in host else host
    _err.print(
        f"ferlab serving model '{model}' on http://{shown}:{port}  (page /, API docs /docs; "
        "Ctrl-C stops)"
    )
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level=log_level,
        # Frames up to twice the limit get an error message; larger ones close the stream (1009).
        ws_max_size=2 * settings.max_upload_bytes,
        timeout_graceful_shutdown=5,
    )


def light(
    camera: CameraOption = "0",
    sink: Annotated[
        str, typer.Option("--sink", metavar="stdout|webhook", help="Where colours go.")
    ] = "stdout",
    url: Annotated[
        str | None, typer.Option("--url", metavar="URL", help="Webhook URL (--sink webhook).")
    ] = None,
    header: Annotated[
        list[str] | None,
        typer.Option(
            "--header",
            metavar="NAME:VALUE",
            help="Extra webhook request header, e.g. 'Authorization: Bearer TOKEN' (repeatable).",
        ),
    ] = None,
    frames: FramesOption = None,
    model: ModelOption = "default",
    detector: DetectorOption = "haar",
    device: DeviceOption = "auto",
    runtime: RuntimeOption = "auto",
    tta: StreamTtaOption = "none",
    smoothing: SmoothingOption = 0.5,
    color: ColorOption = None,
    light_tau: TauOption = 1.0,
    webhook_interval: IntervalOption = 0.5,
) -> None:
    """Drive an ambient light from the emotions a camera sees (no web page needed)."""
    from ferlab.light import (
        LightMapper,
        LightSink,
        StdoutSink,
        WebhookSink,
        parse_color_overrides,
    )

    if sink not in ("stdout", "webhook"):
        raise FerlabError(f"--sink must be stdout or webhook, got '{sink}'")
    if sink == "webhook" and not url:
        raise FerlabError("--sink webhook needs --url http://...")
    mapper = LightMapper(parse_color_overrides(color or []), tau=light_tau)
    rec = _recognizer(model, detector, device, runtime, tta, smoothing=smoothing)
    mapper.check_labels(rec.labels)
    webhook = (
        WebhookSink(
            url,
            min_interval=webhook_interval,
            headers=_parse_headers(header or []),
            on_error=lambda message: _err.print(f"[yellow]warning:[/] {message}"),
        )
        if sink == "webhook"
        else None
    )
    target: LightSink = webhook if webhook is not None else StdoutSink()
    source: int | str = int(camera) if camera.isdigit() else camera
    try:
        for fr in rec.live(source, display=False, max_frames=frames):
            target.send(mapper.update([face.scores for face in fr.faces]))
    except KeyboardInterrupt:
        pass  # Ctrl-C is how a live light ends
    finally:
        target.close()
    if webhook is not None:
        _err.print(f"webhook: {webhook.posted} colours posted, {webhook.errors} failed")


def _parse_headers(items: list[str]) -> dict[str, str]:
    headers = {}
    for item in items:
        name, sep, value = item.partition(":")
        if not sep or not name.strip():
            raise FerlabError(f"--header '{item}' must look like NAME: VALUE")
        headers[name.strip()] = value.strip()
    return headers
