"""``ferlab serve`` (web page, REST API, WebSocket stream) and ``ferlab light`` (ambient light).

* ``serve`` loads the model once and runs the FastAPI application of :mod:`ferlab.serve` with
  uvicorn, on localhost unless ``--host`` says otherwise.
* ``light`` reads a camera (or a video read like one) without any page and sends the smoothed
  emotion colour to stdout as JSON lines or to a webhook (a smart-light bridge).

See ``docs/serve.md``.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from ferlab.cli.predict import (
    CameraOption,
    DetectorOption,
    DetectSizeOption,
    DeviceOption,
    FramesOption,
    MinFaceOption,
    ModelOption,
    RuntimeOption,
    SmoothingOption,
    TtaOption,
    build_recognizer,
)
from ferlab.errors import FerlabError

_err = Console(stderr=True, highlight=False, soft_wrap=True)

ColorOption = Annotated[
    list[str] | None,
    typer.Option(
        "--color",
        metavar="EMOTION=#RRGGBB",
        help="Light colour of an emotion (repeatable), replacing its default; FER+ spellings "
        "(happiness, sadness, anger) are accepted.",
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


def _api_key(given: str | None, key_file: Path | None) -> str | None:
    """The key from ``--api-key``, ``--api-key-file`` or ``$FERLAB_API_KEY``, in that order."""
    from ferlab.serve import API_KEY_ENV

    if given is not None and key_file is not None:
        raise FerlabError("give the API key once: --api-key or --api-key-file, not both")
    if key_file is not None:
        try:
            lines = key_file.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise FerlabError(f"cannot read the API key file {key_file}: {exc}") from None
        key = lines[0].strip() if lines else ""
        if not key:
            raise FerlabError(f"the API key file {key_file} is empty (the key is its first line)")
        return key
    if given is not None:
        _err.print(
            "[yellow]warning:[/] a key given with --api-key is visible to every local user in "
            f"the process list; prefer --api-key-file or the {API_KEY_ENV} environment variable"
        )
        return given
    return os.environ.get(API_KEY_ENV) or None


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _check_port(host: str, port: int) -> None:
    """A clear error when ``host:port`` cannot be listened on (in use, no such address)."""
    import socket

    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
            probe.bind(address)
    except OSError as exc:
        reason = getattr(exc, "strerror", None) or exc
        raise FerlabError(
            f"cannot listen on {host}:{port}: {reason} (choose another --port?)"
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
    min_face: MinFaceOption = 48,
    detect_size: DetectSizeOption = 640,
    api_key: Annotated[
        str | None,
        typer.Option(
            "--api-key",
            help="Require this key in the X-API-Key header of /v1 requests (visible in the "
            "process list: prefer --api-key-file or $FERLAB_API_KEY).",
        ),
    ] = None,
    api_key_file: Annotated[
        Path | None,
        typer.Option(
            "--api-key-file",
            metavar="FILE",
            help="Read the API key from the first line of FILE.",
        ),
    ] = None,
    max_upload_mb: Annotated[
        float,
        typer.Option("--max-upload-mb", min=0.01, help="Largest upload or stream frame, MiB."),
    ] = 10.0,
    max_megapixels: Annotated[
        float,
        typer.Option(
            "--max-megapixels",
            min=0.01,
            help="Pixel budget of one image: a larger JPEG is decoded reduced, others refused.",
        ),
    ] = 16.0,
    max_pending: Annotated[
        int,
        typer.Option("--max-pending", min=1, help="Requests waiting for recognition (503 above)."),
    ] = 32,
    workers: Annotated[
        int,
        typer.Option("--workers", min=0, help="Recognition threads (0: one per usable core)."),
    ] = 0,
    batch: Annotated[
        bool,
        typer.Option("--batch/--no-batch", help="Classify concurrent requests' faces in one call."),
    ] = False,
    max_connections: Annotated[
        int,
        typer.Option(
            "--max-connections", min=1, help="Connections held at once (the oldest idle goes)."
        ),
    ] = 4096,
    header_timeout: Annotated[
        float,
        typer.Option(
            "--header-timeout", min=0.1, help="Seconds to send a request's headers (408 after)."
        ),
    ] = 20.0,
    body_timeout: Annotated[
        float,
        typer.Option("--body-timeout", min=0.1, help="Seconds to send a request's body."),
    ] = 60.0,
    max_streams: Annotated[
        int, typer.Option("--max-streams", min=1, help="WebSocket streams open at once.")
    ] = 8,
    max_streams_per_client: Annotated[
        int,
        typer.Option(
            "--max-streams-per-client", min=1, help="Streams open at once from one address."
        ),
    ] = 4,
    stream_idle_timeout: Annotated[
        float,
        typer.Option(
            "--stream-idle-timeout", min=0.1, help="Seconds without a frame before a stream ends."
        ),
    ] = 30.0,
    stream_wait: Annotated[
        float,
        typer.Option(
            "--stream-wait", min=0.1, help="Seconds a new stream waits for a place (1013 after)."
        ),
    ] = 30.0,
    allow_host: Annotated[
        list[str] | None,
        typer.Option(
            "--allow-host",
            metavar="NAME",
            help="Host name the Host and Origin headers may carry, besides loopback names and "
            "addresses (repeatable).",
        ),
    ] = None,
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
    from ferlab.serve import ServeSettings, create_app, raise_fd_limit, server_config

    api_key = _api_key(api_key, api_key_file)
    hosts = list(allow_host or [])
    if not _is_ip(host) and host != "localhost":
        hosts.append(host)  # the name the server is bound to is one its clients use
    settings = ServeSettings(
        max_upload_bytes=int(max_upload_mb * 2**20),
        max_pixels=int(max_megapixels * 1e6),
        api_key=api_key,
        max_pending=max_pending,
        workers=workers or None,
        batch=batch,
        max_connections=max_connections,
        header_timeout=header_timeout,
        body_timeout=body_timeout,
        max_streams=max_streams,
        max_streams_per_client=max_streams_per_client,
        stream_idle_timeout=stream_idle_timeout,
        stream_wait=stream_wait,
        allowed_hosts=tuple(hosts),
        light_colors=parse_color_overrides(color or []),
        light_tau=light_tau,
        webhook_url=webhook,
        webhook_interval=webhook_interval,
    )
    # Loaded here rather than in the app's lifespan so that a bad model name is one clear line.
    rec = build_recognizer(
        model,
        detector,
        device,
        runtime,
        tta,
        min_face,
        detect_size,
        smoothing=smoothing,
        faces="detect",
    )
    if settings.worker_count > 1 and getattr(rec.classifier, "runtime", None) == "torch":
        import torch

        torch.set_num_threads(1)  # the workers spread over the cores; each runs one thread
    app = create_app(recognizer=rec, settings=settings)
    raise_fd_limit()
    config = server_config(app, host=host, port=port, log_level=log_level)
    if config.guard.max_connections < max_connections:
        _err.print(
            f"[yellow]warning:[/] at most {config.guard.max_connections} connections: the "
            "open-file limit leaves no room for more"
        )
    if not _is_loopback(host) and api_key is None:
        _err.print(
            f"[yellow]warning:[/] listening on {host} without an API key: anyone who can reach "
            "this machine can use the model (set --api-key or FERLAB_API_KEY)"
        )
    _check_port(host, port)  # before saying "serving on": a port in use is then one clear line
    shown = f"[{host}]" if ":" in host else host
    _err.print(
        f"ferlab serving model '{model}' on http://{shown}:{port}  (page /, API docs /docs; "
        "Ctrl-C stops)"
    )
    # uvicorn re-raises the Ctrl-C it handled once the server has stopped cleanly.
    with contextlib.suppress(KeyboardInterrupt):
        uvicorn.Server(config).run()


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
    tta: TtaOption = None,
    min_face: MinFaceOption = 48,
    detect_size: DetectSizeOption = 640,
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
    rec = build_recognizer(
        model, detector, device, runtime, tta, min_face, detect_size, smoothing=smoothing
    )
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
