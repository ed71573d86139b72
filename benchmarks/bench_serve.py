"""Benchmark of ``ferlab serve``: requests/s and latency of ``/v1/predict``, frames/s of the stream.

Workload: a 640×480 JPEG photo with one FER2013 face (Training row 8, 160 px) on a gradient
background for ``/v1/predict``, and a short "webcam" clip of that face drifting across the frame
for ``/v1/stream``.

The server runs in a separate (spawned) process, so client and server do not share one
interpreter lock, with uvicorn on localhost. Measured in one run, side by side:

* **in-process reference**: the same :class:`~ferlab.recognize.Recognizer` called directly on
  the same JPEG bytes (decode + recognise + the JSON dictionary), one call after another; the
  ratio of the HTTP figures to it is the cost of HTTP, multipart parsing and JSON;
* **/v1/predict, 1 client**: one keep-alive connection, one request after another, in rounds
  alternating with the reference's;
* **/v1/predict, N clients**: ``--clients`` threads with their own connections at once (the
  server recognises one image at a time, so this shows queueing, not more throughput);
* **/v1/stream, lock-step**: one WebSocket client sending the next frame when the previous
  answer arrives: sustained processed frames/s, against the reference of the recognizer's
  video mode (:meth:`Recognizer.track`) on the same decoded frames plus their decoding;
* **/v1/stream, 30 fps camera**: frames sent at 30 per second regardless of answers: how many
  the server processes per second, how many it drops as stale, and the latency of the answers.

Classifier: ``--model`` (a name or checkpoint path); ``default`` falls back, when the shipped
weights are not installed, to a randomly initialised FerlabNet wrapped the same way as in
``bench_recognize.py`` (the timing depends on the network's size, not its weights). Torch runs
with ``--torch-threads`` intra-op threads (default 1, as in ``bench_recognize.py``).

``--write`` replaces (or appends) the "Web service" section of ``docs/benchmarks.md``.

Usage: ``python benchmarks/bench_serve.py [--requests N] [--clients N] [--seconds S] [--write]``
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import multiprocessing as mp
import os
import socket
import threading
import time
from collections.abc import Callable

import cv2
import httpx
import numpy as np
import torch
from bench_recognize import load_classifier, read_faces
from doc_section import machine, write_doc_section
from rich.console import Console
from rich.table import Table
from websockets.sync.client import connect

from ferlab.recognize import FrameResult, Recognizer, decode_image

SECTION = "## Web service"
#: Alternating rounds of the in-process reference and of one HTTP client.
ROUNDS = 5
console = Console()


def scene(face: np.ndarray, shift: int = 0) -> np.ndarray:
    """640×480 BGR: a horizontal gradient with one 160 px face at x = 240 + shift."""
    yy, xx = np.mgrid[0:480, 0:640]
    gray = (70 + 100 * xx / 640 + 15 * np.sin(yy / 9.0)).astype(np.uint8)
    x = 240 + shift
    gray[150:310, x : x + 160] = cv2.resize(face, (160, 160), interpolation=cv2.INTER_CUBIC)
    return cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)


def jpeg(image: np.ndarray) -> bytes:
    return cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()


def build_recognizer(model: str) -> tuple[Recognizer, str]:
    if model == "default":
        classifier, described = load_classifier()
    else:
        from ferlab.predictor import load_model

        classifier, described = load_model(model, device="cpu"), f"model {model}"
    return Recognizer(model=classifier), described


def serve_forever(model: str, port: int, threads: int) -> None:
    """Child process: build the same recognizer and serve it on ``port``.

    A spawned process, not a forked one: OpenCV's and OpenMP's thread pools are not made to
    survive a fork, and the server should run as ``ferlab serve`` would.
    """
    import uvicorn

    from ferlab.serve import create_app

    torch.set_num_threads(threads)
    rec, _ = build_recognizer(model)
    uvicorn.run(create_app(recognizer=rec), host="127.0.0.1", port=port, log_level="error")


def percentiles(seconds: list[float]) -> tuple[float, float]:
    p50, p99 = np.percentile(np.array(seconds) * 1000, [50, 99])
    return float(p50), float(p99)


def timed_calls(n: int, call: Callable[[], object]) -> tuple[float, list[float]]:
    """Wall time of ``n`` calls and each call's latency."""
    latencies = []
    start = time.perf_counter()
    for _ in range(n):
        t0 = time.perf_counter()
        call()
        latencies.append(time.perf_counter() - t0)
    return time.perf_counter() - start, latencies


def predict_concurrent(url: str, data: bytes, n: int, clients: int) -> tuple[float, list[float]]:
    latencies: list[float] = []
    errors: list[int] = []
    lock = threading.Lock()
    left = [n]

    def worker() -> None:
        with httpx.Client(base_url=url, timeout=120) as http:
            while True:
                with lock:
                    if left[0] == 0:
                        return
                    left[0] -= 1
                t0 = time.perf_counter()
                r = http.post("/v1/predict", files={"file": ("photo.jpg", data, "image/jpeg")})
                with lock:
                    latencies.append(time.perf_counter() - t0)
                    if r.status_code != 200:
                        errors.append(r.status_code)

    start = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise SystemExit(f"{len(errors)} requests failed: {errors[:5]}")
    return time.perf_counter() - start, latencies


def stream_lockstep(url: str, frames: list[bytes], seconds: float) -> tuple[int, float, list]:
    """Send a frame, wait for its answer, repeat (cycling the clip) for ``seconds``."""
    latencies, done = [], 0
    with connect(url.replace("http", "ws") + "/v1/stream", max_size=None) as ws:
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            t0 = time.perf_counter()
            ws.send(frames[done % len(frames)])
            answer = json.loads(ws.recv(timeout=60))
            assert answer["type"] == "frame", answer
            latencies.append(time.perf_counter() - t0)
            done += 1
        return done, time.perf_counter() - start, latencies


def stream_camera(url: str, frames: list[bytes], seconds: float, fps: float = 30.0) -> dict:
    """Send frames at ``fps`` whatever the answers; count what the server processed and dropped."""
    answers: list[dict] = []
    with connect(url.replace("http", "ws") + "/v1/stream", max_size=None) as ws:

        def receive() -> None:
            try:
                while True:
                    answers.append(json.loads(ws.recv()))
            except Exception:  # the connection closed at the end of the run
                return

        reader = threading.Thread(target=receive, daemon=True)
        reader.start()
        start = time.perf_counter()
        sent = 0
        while (elapsed := time.perf_counter() - start) < seconds:
            ws.send(frames[sent % len(frames)])
            sent += 1
            time.sleep(max(0.0, sent / fps - (time.perf_counter() - start)))
        time.sleep(1.0)  # let the last answer arrive
    frames_answered = [a for a in answers if a.get("type") == "frame"]
    last = frames_answered[-1]
    return {
        "sent": sent,
        "seconds": elapsed,
        "processed": last["processed"],
        "dropped": last["dropped"],
        "latency_p50": float(np.median([a["latency_ms"] for a in frames_answered])),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="default", help="model name or checkpoint path")
    parser.add_argument("--requests", type=int, default=200, help="predictions per measurement")
    parser.add_argument("--clients", type=int, default=4, help="concurrent HTTP clients")
    parser.add_argument("--seconds", type=float, default=15.0, help="length of stream runs")
    parser.add_argument("--torch-threads", type=int, default=1)
    parser.add_argument("--write", action="store_true", help="record in docs/benchmarks.md")
    args = parser.parse_args()

    torch.set_num_threads(args.torch_threads)
    face = read_faces(8, 1)[0]
    photo = jpeg(scene(face))
    clip = [jpeg(scene(face, shift)) for shift in range(0, 120, 4)]
    rec, described = build_recognizer(args.model)
    console.print(f"classifier: {described}; photo {len(photo) / 1024:.0f} kB")

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    server = mp.get_context("spawn").Process(
        target=serve_forever, args=(args.model, port, args.torch_threads), daemon=True
    )
    server.start()
    try:
        for _ in range(600):
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        load = os.getloadavg()[0]
        rows = run_all(args, rec, url, photo, clip)
    finally:
        server.terminate()
        server.join(10)
    show(rows)
    if args.write:
        write_section(args, described, load, rows)


def run_all(args, rec: Recognizer, url: str, photo: bytes, clip: list[bytes]) -> dict:  # noqa: ANN001
    n = max(ROUNDS, args.requests)

    def in_process() -> dict:
        image = decode_image(photo, "photo.jpg")
        faces = rec.process_frame(image, source="photo.jpg")
        return FrameResult("photo.jpg", 0, 0.0, None, faces).to_dict()

    assert len(in_process()["faces"]) == 1, "the benchmark photo must show one face"
    with httpx.Client(base_url=url, timeout=120) as http:

        def one_request() -> None:
            r = http.post("/v1/predict", files={"file": ("photo.jpg", photo, "image/jpeg")})
            r.raise_for_status()

        for _ in range(10):  # warm-up of both sides
            in_process()
            one_request()
        # Interleaved rounds, so that both see the same share of the machine's other load.
        ref_wall = one_wall = 0.0
        ref_lat, one_lat = [], []
        for _ in range(ROUNDS):
            wall, lat = timed_calls(n // ROUNDS, in_process)
            ref_wall, ref_lat = ref_wall + wall, ref_lat + lat
            wall, lat = timed_calls(n // ROUNDS, one_request)
            one_wall, one_lat = one_wall + wall, one_lat + lat
        n = ROUNDS * (n // ROUNDS)
    many_wall, many_lat = predict_concurrent(url, photo, n, args.clients)

    repeats = max(1, int(args.seconds * 10 / len(clip)))

    def reference_stream() -> None:
        for _ in range(repeats):
            list(rec.track(decode_image(f) for f in clip))

    track_wall, _ = timed_calls(1, reference_stream)
    lock_n, lock_wall, lock_lat = stream_lockstep(url, clip, args.seconds)
    camera = stream_camera(url, clip, args.seconds)
    return {
        "n": n,
        "ref": (n / ref_wall, *percentiles(ref_lat)),
        "one": (n / one_wall, *percentiles(one_lat)),
        "many": (n / many_wall, *percentiles(many_lat)),
        "track_fps": repeats * len(clip) / track_wall,
        "lock": (lock_n / lock_wall, *percentiles(lock_lat)),
        "camera": camera,
    }


def show(rows: dict) -> None:
    table = Table(title="ferlab serve")
    for name in ("measurement", "per second", "p50 ms", "p99 ms"):
        table.add_column(name, justify="left" if name == "measurement" else "right")
    for label, key in (
        ("in-process reference (decode + recognise + JSON dict)", "ref"),
        ("/v1/predict, 1 client", "one"),
        ("/v1/predict, concurrent clients", "many"),
        ("/v1/stream, lock-step", "lock"),
    ):
        rate, p50, p99 = rows[key]
        table.add_row(label, f"{rate:.1f}", f"{p50:.1f}", f"{p99:.1f}")
    console.print(table)
    console.print(f"reference video mode in-process: {rows['track_fps']:.1f} frames/s")
    console.print(f"30 fps camera: {rows['camera']}")


def write_section(args, described: str, load: float, rows: dict) -> None:  # noqa: ANN001
    ref, one, many, lock = rows["ref"], rows["one"], rows["many"], rows["lock"]
    cam = rows["camera"]
    today = dt.date.today().isoformat()
    lines = [
        SECTION,
        "",
        f"Script: `benchmarks/bench_serve.py --requests {args.requests} --clients {args.clients} "
        f"--seconds {args.seconds:g}`. Measured {today} on {machine(load)}. Classifier: "
        f"{described}, {args.torch_threads} torch thread(s). "
        "Server: uvicorn in a separate process on localhost. Photo: 640×480 JPEG "
        "with one 160 px FER2013 face; stream: 30 frames of that face drifting across the frame.",
        "",
        "| measurement | per second | p50 ms | p99 ms |",
        "|---|---:|---:|---:|",
        f"| in-process reference: decode + recognise + JSON dict | {ref[0]:.1f} | {ref[1]:.1f} "
        f"| {ref[2]:.1f} |",
        f"| `POST /v1/predict`, 1 client | {one[0]:.1f} | {one[1]:.1f} | {one[2]:.1f} |",
        f"| `POST /v1/predict`, {args.clients} concurrent clients | {many[0]:.1f} | "
        f"{many[1]:.1f} | {many[2]:.1f} |",
        f"| `WS /v1/stream`, lock-step (frames) | {lock[0]:.1f} | {lock[1]:.1f} | {lock[2]:.1f} |",
        "",
        f"Ratio: one HTTP client gets **{one[0] / ref[0]:.2f}×** the in-process rate "
        f"({1000 / one[0] - 1000 / ref[0]:.1f} ms of HTTP, multipart and JSON per request); "
        f"{args.clients} concurrent clients get {many[0] / ref[0]:.2f}× (the server recognises "
        "one image at a time, so extra clients add waiting time, not throughput).",
        "",
        f"Stream: lock-step **{lock[0]:.1f} frames/s** against {rows['track_fps']:.1f} frames/s "
        f"for the recognizer's video mode in-process on the same JPEG frames "
        f"({lock[0] / rows['track_fps']:.2f}×). A camera sending 30 frames/s for "
        f"{cam['seconds']:.0f} s: {cam['processed']} of {cam['sent']} frames processed "
        f"({cam['processed'] / cam['seconds']:.1f} frames/s), {cam['dropped']} dropped as stale, "
        f"median latency from receipt to answer {cam['latency_p50']:.0f} ms: the latency stays "
        "that of one frame instead of growing with a queue.",
    ]
    write_doc_section(lines)


if __name__ == "__main__":
    main()
