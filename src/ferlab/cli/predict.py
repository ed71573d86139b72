"""``ferlab predict`` / ``video`` / ``live``: emotions of the faces in photos, videos, a camera.

* ``predict PATH...`` takes images, folders of images (recursively) and videos; with ``--json``
  it prints one JSON object per image (per frame for videos), otherwise a table.
* ``video PATH`` tracks faces through a video: a per-face summary, or JSON lines per frame, and
  optionally an annotated MP4, a CSV of every face in every frame, a per-second timeline CSV
  and an emotion timeline plot; ``--sample-fps N`` analyses N frames per second of video time.

Folders and lists of images are decoded and searched on several threads and their faces
classified in batches (``--threads``); results stream as they come, in the order of the inputs
(JSON lines on stdout, CSV rows into ``--csv``).
* ``live`` reads a camera: an OpenCV window where the OpenCV build and a display allow it,
  JSON lines otherwise.

A source that cannot be read is reported on stderr (and in the JSON) and the others are still
processed; the exit status is then 1.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ferlab.cli.console import CliConsole, escape

if TYPE_CHECKING:
    from ferlab.recognize import FrameResult, Recognizer, Results
    from ferlab.recognize.results import CsvStream

_DETECTOR_HELP = (
    "Face detector: haar (OpenCV frontal cascade, fastest) or haar-profile (adds the profile "
    "cascade on the image and its mirror)."
)
ModelOption = Annotated[
    str,
    typer.Option(
        "--model",
        "-m",
        metavar="NAME|PATH",
        help="Emotion model: a shipped model name (default), a checkpoint or an .onnx export.",
    ),
]
DetectorOption = Annotated[str, typer.Option("--detector", metavar="NAME", help=_DETECTOR_HELP)]
DeviceOption = Annotated[
    str, typer.Option("--device", help="Where the model runs: auto, cpu or cuda.")
]
RuntimeOption = Annotated[
    str,
    typer.Option(
        "--runtime",
        metavar="NAME",
        help="What runs the model: torch, onnx (ONNX Runtime; a checkpoint is exported on the "
        "fly) or auto (the fastest available within 0.1 point of fp32's accuracy: ONNX Runtime, "
        "int8 for the shipped models; .onnx files always run with ONNX Runtime).",
    ),
]
TtaOption = Annotated[
    str | None,
    typer.Option(
        "--tta",
        metavar="NAME",
        help="Test-time augmentation: none, flip or ten_crop (10 inputs per face, the most "
        "accurate); default: the model's own for photos (ten_crop for the shipped models), "
        "none for video and camera frames (smoothing over frames averages already).",
    ),
]
MinFaceOption = Annotated[
    int,
    typer.Option(
        "--min-face",
        metavar="PX",
        min=8,
        help="Smallest face side to detect, in pixels of the image (lower finds smaller faces, "
        "slower; raise --detect-size too for faces under 1/26 of the image's long side).",
    ),
]
DetectSizeOption = Annotated[
    int,
    typer.Option(
        "--detect-size",
        metavar="PX",
        min=64,
        help="Longest side of the downscaled copy the detector scans (larger finds smaller "
        "faces in big photos, slower).",
    ),
]
CameraOption = Annotated[
    str,
    typer.Option(
        "--camera",
        metavar="INDEX|PATH",
        help="Camera index, or a stream URL / video file read like a camera.",
    ),
]
FramesOption = Annotated[
    int | None,
    typer.Option("--frames", metavar="N", min=1, help="Stop after N processed frames."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON lines instead of a table.")]
ThreadsOption = Annotated[
    int | None,
    typer.Option(
        "--threads",
        metavar="N",
        min=1,
        help="CPU threads for the model and for reading images in parallel (default: "
        "OMP_NUM_THREADS when set, else every core).",
    ),
]
SmoothingOption = Annotated[
    float,
    typer.Option(
        "--smoothing",
        metavar="ALPHA",
        help="Weight of the newest frame in each face's moving average (1 = no smoothing).",
    ),
]

EngineOption = Annotated[
    str,
    typer.Option(
        "--engine",
        metavar="NAME",
        help="local (this process) or ray (Ray Data actors on this machine or a cluster; "
        'pip install "ferlab\\[ray]"; docs/scale.md).',
    ),
]
AddressOption = Annotated[
    str | None,
    typer.Option(
        "--address",
        metavar="ADDR",
        help="With --engine ray: the Ray cluster to join (default: $RAY_ADDRESS, else a local "
        "Ray on this machine).",
    ),
]
WorkersOption = Annotated[
    int | None,
    typer.Option(
        "--workers",
        metavar="N",
        min=1,
        help="With --engine ray: actors, one CPU each (default: every CPU of the local Ray or "
        "the cluster).",
    ),
]
ChunkFramesOption = Annotated[
    int,
    typer.Option(
        "--chunk-frames",
        metavar="N",
        min=1,
        help="With --engine ray: videos are split into ranges of N frames across workers; "
        "tracks start afresh in each range (docs/scale.md).",
    ),
]

_out = CliConsole()
_err = CliConsole(stderr=True)

#: Extensions annotated images keep; other inputs are written as PNG.
_WRITABLE = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


def register(app: typer.Typer) -> None:
    """Add ``predict``, ``video`` and ``live`` to the ``ferlab`` command."""
    app.command("predict")(predict)
    app.command("video")(video)
    app.command("live")(live)


def build_recognizer(
    model: str,
    detector: str,
    device: str,
    runtime: str,
    tta: str | None,
    min_face: int,
    detect_size: int,
    threads: int | None = None,
    **kwargs: Any,
) -> Recognizer:
    """The :class:`~ferlab.recognize.Recognizer` of the recognition commands' options; idle
    threads of every runtime wait passively (the machine may be busy with other work)."""
    from ferlab.cli.options import passive_openmp
    from ferlab.recognize import Recognizer

    passive_openmp()
    return Recognizer(
        detector=detector,
        model=model,
        device=device,
        runtime=runtime,
        tta=tta,
        min_face=min_face,
        detect_size=detect_size,
        threads=threads,
        **kwargs,
    )


def _print_json(payload: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(payload) + "\n")
    sys.stdout.flush()


def _report_error(fr: FrameResult) -> None:
    _err.print(f"[bold red]error:[/] {escape(fr.error)}")


def predict(
    paths: Annotated[
        list[Path],
        typer.Argument(
            metavar="PATH",
            help="Images (JPEG, PNG, BMP, WebP, TIFF), folders of images, or videos.",
            show_default=False,
        ),
    ],
    model: ModelOption = "default",
    detector: DetectorOption = "haar",
    device: DeviceOption = "auto",
    runtime: RuntimeOption = "auto",
    tta: TtaOption = None,
    min_face: MinFaceOption = 48,
    detect_size: DetectSizeOption = 640,
    faces: Annotated[
        str,
        typer.Option(
            "--faces",
            metavar="MODE",
            help="Where faces come from: auto (the detector's; an image up to 128 px a side "
            "where it finds none, like FER2013's 48×48 crops, is one face), detect, or whole "
            "(every image is one face).",
        ),
    ] = "auto",
    boxes: Annotated[
        Path | None,
        typer.Option(
            "--boxes",
            metavar="FILE.csv",
            help="Faces from your own detector: a CSV with the header image,x,y,w,h (one row "
            "per face, pixels); images without a row have no face.",
        ),
    ] = None,
    json_out: JsonOption = False,
    csv: Annotated[
        Path | None,
        typer.Option(
            "--csv",
            metavar="FILE",
            help="Write every face as a CSV row; images without a face (or unreadable, with "
            "an error) get a row with empty face columns, as --json lists them.",
        ),
    ] = None,
    annotate: Annotated[
        Path | None,
        typer.Option(
            "--annotate",
            metavar="OUTDIR",
            help="Write each image with boxes, labels and probability bars into OUTDIR "
            "(videos as OUTDIR/<name>.mp4).",
        ),
    ] = None,
    threads: ThreadsOption = None,
    engine: EngineOption = "local",
    address: AddressOption = None,
    workers: WorkersOption = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            metavar="DIR",
            help="With --engine ray: write the rows as a Parquet dataset into DIR; rerunning "
            "with the same DIR skips the inputs already there.",
        ),
    ] = None,
    chunk_frames: ChunkFramesOption = 3000,
) -> None:
    """Recognise the emotion of every face in photos, folders and videos."""
    from ferlab.recognize.io import read_boxes

    _check_engine(engine, address, workers, out, annotate=annotate, boxes=boxes)
    if engine == "ray":
        settings = {"model": model, "detector": detector, "device": device, "runtime": runtime}
        settings |= {"tta": tta, "min_face": min_face, "detect_size": detect_size, "faces": faces}
        settings |= {"threads": threads} if threads is not None else {}
        job = {"address": address, "workers": workers, "out": out, "chunk_frames": chunk_frames}
        results = _recognize_ray(paths, json_out, job, settings)
        if csv is not None:
            results.to_csv(csv, every_frame=True)
    else:
        given = read_boxes(boxes) if boxes is not None else None
        rec = build_recognizer(
            model, detector, device, runtime, tta, min_face, detect_size, threads, faces=faces
        )
        sink = _AnnotationSink(annotate) if annotate is not None else None
        try:
            results = _recognize_all(rec, paths, json_out, sink, given, csv)
        finally:
            if sink is not None:
                sink.close()
    if not json_out:
        _print_table(results)
    if results.errors:
        raise typer.Exit(1)


def _recognize_all(
    rec: Recognizer,
    paths: list[Path],
    json_out: bool,
    sink: _AnnotationSink | _VideoSink | None,
    boxes: dict[str, list[tuple[int, int, int, int]]] | None = None,
    csv: Path | None = None,
) -> Results:
    """Every frame of every source into one :class:`Results`, reported as it arrives (JSON
    lines, CSV rows); consecutive image files go to the recognizer together, which reads them
    on several threads.

    Unreadable sources are collected rather than raised, so one bad file neither hides the
    others' results nor ends the run with a traceback; the caller turns them into exit status 1.
    """
    from ferlab.recognize import Results
    from ferlab.recognize.recognizer import image_runs
    from ferlab.recognize.results import CsvStream

    results = Results(rec.labels)
    stream = CsvStream(csv, rec.labels) if csv is not None else None
    try:
        for group in image_runs(paths):
            frames = rec.iter_frames(group, errors="collect", progress=not json_out, boxes=boxes)
            given = group if isinstance(group, Path) else None
            _report(frames, results, json_out, sink, given, stream)
    finally:
        if stream is not None:
            stream.close()
    return results


def _report(
    frames: Any,
    results: Results,
    json_out: bool,
    sink: _AnnotationSink | _VideoSink | None = None,
    path: Path | None = None,
    stream: CsvStream | None = None,
) -> None:
    """Add each frame to ``results`` (and to the CSV ``stream``): its error on stderr, its
    image to ``sink``, its JSON."""
    for fr in frames:
        results.add(fr)
        if stream is not None:
            stream.add(fr)
        if fr.error is not None:
            _report_error(fr)
        elif sink is not None:
            sink.write(fr, path or Path(fr.source))
        if json_out:
            _print_json(fr.to_dict())


def _check_engine(
    engine: str, address: str | None, workers: int | None, parquet: Path | None, **local: Any
) -> None:
    """The engine's name, and no option of the other engine (a one-line error otherwise)."""
    from ferlab.batch import ENGINES
    from ferlab.cli.options import check_choice
    from ferlab.errors import FerlabError

    check_choice(engine, ENGINES, "--engine")
    if engine == "ray":
        given = [name for name, value in local.items() if value is not None]
        if given:
            raise FerlabError(
                f"--{given[0]} is for the local engine; leave it out with --engine ray"
            )
    elif address is not None or workers is not None or parquet is not None:
        option = (
            "--address" if address is not None else "--workers" if workers is not None else "--out"
        )
        raise FerlabError(f"{option} is for the ray engine: add --engine ray")


def _recognize_ray(
    paths: list[Path], json_out: bool, job: dict[str, Any], settings: dict[str, Any]
) -> Results:
    """Every input run on Ray Data (ferlab.batch), reported as the local engine reports."""
    from ferlab import batch
    from ferlab.recognize import Results
    from ferlab.recognize.results import frames_of

    df = batch.predict(paths, engine="ray", progress=not json_out, **job, **settings)
    columns = list(df.columns)
    labels = tuple(columns[columns.index("roll") + 1 : columns.index("label")])
    results = Results(labels)
    _report(frames_of(df, labels), results, json_out)
    return results


def _print_table(results: Any) -> None:
    from rich.table import Table

    videos = any(f.frame > 0 for f in results)
    table = Table(
        caption="p: the emotion's probability; det.: the face detector's confidence in the box "
        "(the cascade's score; real faces about 2-8, higher is more face-like)",
        caption_justify="left",
    )
    table.add_column("source", overflow="fold", min_width=24)
    if videos:
        table.add_column("frame", justify="right")
    table.add_column("face", justify="right")
    table.add_column("box x,y w×h", no_wrap=True)
    table.add_column("emotion", no_wrap=True)
    table.add_column("p", justify="right")
    table.add_column("det.", justify="right")
    by_source: dict[str, list] = {s: [] for s in results.sources}
    for face in results:
        by_source[face.source].append(face)
    failed = {source for source, _ in results.errors}
    blank = [""] * (1 + videos)
    for source, faces in by_source.items():
        shown = escape(_display_path(source))
        if source in failed:
            table.add_row(shown, *blank, "", "[red]unreadable[/]", "", "")
        elif not faces:
            table.add_row(shown, *blank, "", "[dim]no face found[/]", "", "")
        for f in faces:
            x, y, w, h = f.box
            table.add_row(
                shown,
                *([str(f.frame)] if videos else []),
                str(f.face_id),
                f"{x},{y} {w}×{h}",
                f.label,
                f"{f.scores[f.label]:.2f}",
                "given" if f.score is None else f"{f.score:.1f}",
            )
    _out.print(table)


def _display_path(source: str) -> str:
    """A source as short as it can be shown unambiguously: relative to the working folder."""
    try:
        return str(Path(source).resolve().relative_to(Path.cwd()))
    except ValueError:
        return source


class _AnnotationSink:
    """Writes annotated images (and videos, frame by frame) under one output folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._videos: dict[str, Any] = {}

    def _target(self, source: str, given: Path, suffix: str) -> Path:
        src = Path(source)
        # Keep the layout below a folder argument, so same-named files in subfolders differ.
        rel = src.relative_to(given) if given.is_dir() and src.is_relative_to(given) else src.name
        return (self.folder / rel).with_suffix(suffix)

    def write(self, fr: FrameResult, given: Path) -> None:
        import cv2

        from ferlab.errors import DataError
        from ferlab.recognize import annotate
        from ferlab.recognize.video import VideoWriter

        drawn = annotate(fr.image, fr.faces, show_id=fr.fps is not None)
        if fr.fps is not None:  # a video frame
            if fr.source not in self._videos:
                self._videos[fr.source] = VideoWriter(
                    self._target(fr.source, given, ".mp4"), fr.fps
                )
            self._videos[fr.source].write(drawn)
            return
        suffix = Path(fr.source).suffix.lower()
        target = self._target(fr.source, given, suffix if suffix in _WRITABLE else ".png")
        ok, data = cv2.imencode(target.suffix, drawn)
        try:
            if not ok:
                raise OSError("encoding failed")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data.tobytes())
        except OSError as exc:
            raise DataError(
                f"cannot write annotated image ({getattr(exc, 'strerror', None) or exc})",
                path=target,
            ) from None

    def close(self) -> None:
        for writer in self._videos.values():
            writer.close()


class _VideoSink:
    """Writes the processed frames of one video, with tracked face ids, to one MP4 file."""

    def __init__(self, out: Path, rec: Recognizer) -> None:
        self.out, self.rec = out, rec
        self._writer: Any = None

    def write(self, fr: FrameResult, given: Path) -> None:
        from ferlab.recognize.draw import annotate
        from ferlab.recognize.video import VideoWriter

        if self._writer is None:  # the frame rate is known from the first frame on
            self._writer = VideoWriter(self.out, self.rec.output_fps(fr.fps))
        self._writer.write(annotate(fr.image, fr.faces, show_id=True))

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


def video(
    path: Annotated[Path, typer.Argument(help="The video file.", show_default=False)],
    out: Annotated[
        Path | None,
        typer.Option("--out", metavar="OUT.mp4", help="Write the annotated video (MPEG-4)."),
    ] = None,
    csv: Annotated[
        Path | None,
        typer.Option(
            "--csv",
            metavar="FILE",
            help="Write every face of every frame as CSV (frames without a face: one row with "
            "empty face columns, as --json lists them).",
        ),
    ] = None,
    every: Annotated[
        int, typer.Option("--every", metavar="N", min=1, help="Process every N-th frame.")
    ] = 1,
    sample_fps: Annotated[
        float | None,
        typer.Option(
            "--sample-fps",
            metavar="N",
            min=0.01,
            help="Analyse N frames per second of video time (the others are skipped without "
            "being converted); for long videos. Instead of --every.",
        ),
    ] = None,
    timeline_csv: Annotated[
        Path | None,
        typer.Option(
            "--timeline-csv",
            metavar="FILE",
            help="Write the per-second timeline: each face's mean emotion probabilities and "
            "most probable emotion in every second of video.",
        ),
    ] = None,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print one JSON object per processed frame.")
    ] = False,
    timeline: Annotated[
        Path | None,
        typer.Option("--timeline", metavar="PNG", help="Plot each face's emotions over time."),
    ] = None,
    model: ModelOption = "default",
    detector: DetectorOption = "haar",
    device: DeviceOption = "auto",
    runtime: RuntimeOption = "auto",
    tta: TtaOption = None,
    smoothing: SmoothingOption = 0.5,
    min_face: MinFaceOption = 48,
    detect_size: DetectSizeOption = 640,
    threads: ThreadsOption = None,
    engine: EngineOption = "local",
    address: AddressOption = None,
    workers: WorkersOption = None,
    chunk_frames: ChunkFramesOption = 3000,
) -> None:
    """Track faces through a video and recognise their emotions over time."""
    if sample_fps is not None and every != 1:
        _err.print("[bold red]error:[/] give --sample-fps or --every, not both")
        raise typer.Exit(2)
    _check_engine(engine, address, workers, None, out=out, **{"sample-fps": sample_fps})
    if engine == "ray":
        settings = {"model": model, "detector": detector, "device": device, "runtime": runtime}
        settings |= {"tta": tta, "min_face": min_face, "detect_size": detect_size}
        settings |= {"smoothing": smoothing, "every_n": every}
        settings |= {"threads": threads} if threads is not None else {}
        job = {"address": address, "workers": workers, "chunk_frames": chunk_frames}
        results = _recognize_ray([path], json_out, job, settings)
        if csv is not None:
            results.to_csv(csv, every_frame=True)
    else:
        rec = build_recognizer(
            model,
            detector,
            device,
            runtime,
            tta,
            min_face,
            detect_size,
            threads,
            smoothing=smoothing,
            every_n=every,
            sample_fps=sample_fps,
        )
        sink = _VideoSink(out, rec) if out is not None else None
        try:
            results = _recognize_all(rec, [path], json_out, sink, csv=csv)
        finally:
            if sink is not None:
                sink.close()
    if timeline_csv is not None and not results.errors:
        _write_timeline_csv(results, timeline_csv)
    if timeline is not None and not results.errors:
        results.plot_timeline(timeline)
    if not json_out and not results.errors:
        _print_summary(results, path)
    if results.errors:
        raise typer.Exit(1)


def _write_timeline_csv(results: Any, path: Path) -> None:
    from ferlab.errors import DataError

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        results.per_second().to_csv(path, index=False)
    except OSError as exc:
        raise DataError(f"cannot write CSV ({exc.strerror or exc})", path=path) from None


def _print_summary(results: Any, path: Path) -> None:
    from rich.table import Table

    summary = results.summary()
    if summary.empty:
        _out.print(f"{escape(str(path))}: no face found")
        return
    table = Table(title=f"{escape(path.name)}: {len(summary)} face{'s' * (len(summary) > 1)}")
    for name in ("face", "from (s)", "to (s)", "frames", "dominant emotion", "mean p"):
        table.add_column(name, justify="left" if name == "dominant emotion" else "right")
    for row in summary.itertuples(index=False):
        table.add_row(
            str(row.face_id),
            f"{row.first:.2f}",
            f"{row.last:.2f}",
            str(row.frames),
            row.dominant,
            f"{getattr(row, row.dominant):.2f}",
        )
    _out.print(table)


def live(
    camera: CameraOption = "0",
    json_out: Annotated[
        bool, typer.Option("--json", help="Stream JSON lines even when a window could be shown.")
    ] = False,
    frames: FramesOption = None,
    model: ModelOption = "default",
    detector: DetectorOption = "haar",
    device: DeviceOption = "auto",
    runtime: RuntimeOption = "auto",
    tta: TtaOption = None,
    smoothing: SmoothingOption = 0.5,
    min_face: MinFaceOption = 48,
    detect_size: DetectSizeOption = 640,
    threads: ThreadsOption = None,
) -> None:
    """Recognise emotions live from a camera (window, or JSON lines without a display)."""
    from ferlab.recognize import has_display

    rec = build_recognizer(
        model, detector, device, runtime, tta, min_face, detect_size, threads, smoothing=smoothing
    )
    show = not json_out and has_display()
    if not show and not json_out:
        _err.print("[yellow]no display available: streaming JSON lines[/]")
    source: int | str = int(camera) if camera.isdigit() else camera
    try:
        for fr in rec.live(source, display=show, max_frames=frames):
            if not show:
                _print_json(fr.to_dict())
    except KeyboardInterrupt:
        return  # Ctrl-C is how a live stream ends
