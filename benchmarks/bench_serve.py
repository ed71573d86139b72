"""Benchmark of ``ferlab serve``: throughput and latency under 16 clients, the stream, and the
limits under hostile clients, with the shipped default model.

The server is ``ferlab serve`` itself, started as a user starts it (a separate process on
127.0.0.1, an ephemeral port, its default limits). Measured in one run, side by side:

* **in-process reference**: the same :class:`~ferlab.recognize.Recognizer` (shipped default
  model, its own ten-crop test-time augmentation, ``--torch-threads`` threads) called directly on
  the same JPEG bytes (decode + recognise + the JSON dictionary), one call after another;
* **modes** (``--compare N``): ``--clients`` clients sending ``N`` requests each to a server with
  one recognition worker (the former design), one worker per core, and one worker per core
  with the faces of concurrent requests batched into one classifier call;
* **the default mode, full count**: ``--clients`` × ``--requests`` requests, in
  :data:`ROUNDS` rounds that alternate with rounds of the reference, so that both see the same
  share of a machine that other jobs are using; errors, p50/p99 latency, and the server's
  resident memory after each round;
* **stream**: one WebSocket client in lock-step, against the recognizer's video mode in-process
  on the same frames (the stream classifies each face once, as the video mode does);
* **hostile clients** (``--hostile``): ``--stalled`` connections that never finish their
  headers, held at once by two client processes, while ``/health`` is timed; eight idle
  streams and a ninth client; the 9400×9500 PNG, timed, with the server's memory before and
  after; the size of the server's log.

Photo: ``examples/astronaut.jpg`` (512×512, one face). Clients are threads with keep-alive
``http.client`` connections and a pre-encoded multipart body, to take as little CPU from the
server as a client can. ``--write`` replaces the "Web service" section of
``docs/benchmarks.md``.

Usage: ``python benchmarks/bench_serve.py [--requests 1000] [--clients 16] [--compare 60]
[--hostile] [--write]``
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import http.client
import io
import json
import multiprocessing as mp
import os
import selectors
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from doc_section import machine, write_doc_section
from rich.console import Console

ROOT = Path(__file__).resolve().parents[1]
PHOTO = ROOT / "examples" / "astronaut.jpg"
SECTION = "## Web service"
#: Alternating rounds of the in-process reference and of the clients.
ROUNDS = 5
BOUNDARY = "ferlabbench"
console = Console()

MODES = {
    "one worker (former design)": ["--workers", "1"],
    "a worker per core": [],
    "a worker per core + batching": ["--batch"],
}


# ------------------------------------------------------------------ the server


class Server:
    """``ferlab serve`` in a subprocess on a free loopback port; its log in a file."""

    def __init__(self, extra: list[str]) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.log = tempfile.NamedTemporaryFile("w+b", suffix=".log", delete=False)  # noqa: SIM115
        argv = [sys.executable, "-m", "ferlab", "serve", "--port", str(self.port), *extra]
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while True:
            if self.proc.poll() is not None:
                raise SystemExit(f"ferlab serve exited: {Path(self.log.name).read_text()}")
            try:
                if self.get("/health")[0] == 200:
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("ferlab serve did not come up in 120 s")
            time.sleep(0.2)

    def get(self, path: str, timeout: float = 10) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def rss_mb(self) -> float:
        pages = int(Path(f"/proc/{self.proc.pid}/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20

    def log_bytes(self) -> int:
        return Path(self.log.name).stat().st_size

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        Path(self.log.name).unlink(missing_ok=True)


def multipart(data: bytes, name: str = "photo.jpg") -> bytes:
    return (
        (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
            "Content-Type: image/jpeg\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{BOUNDARY}--\r\n".encode()
    )


def load(port: int, body: bytes, per_client: int, clients: int) -> tuple[float, list, list]:
    """``clients`` threads, each with its own keep-alive connection, ``per_client`` requests
    each; wall time, latencies (s) and failures."""
    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()
    headers = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        for _ in range(per_client):
            t0 = time.perf_counter()
            try:
                conn.request("POST", "/v1/predict", body=body, headers=headers)
                response = conn.getresponse()
                answer = response.read()
                ok = response.status == 200 and len(json.loads(answer)["faces"]) == 1
                problem = None if ok else f"{response.status} {answer[:200]!r}"
            except (OSError, http.client.HTTPException) as exc:
                problem = f"{type(exc).__name__}: {exc}"
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            elapsed = time.perf_counter() - t0
            with lock:
                latencies.append(elapsed)
                if problem:
                    failures.append(problem)
        conn.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - start, latencies, failures


def timed_calls(n: int, call: Callable[[], object]) -> float:
    start = time.perf_counter()
    for _ in range(n):
        call()
    return time.perf_counter() - start


def measure(
    server: Server,
    body: bytes,
    in_process: Callable,
    per_client: int,
    clients: int,
    progress: Callable[[dict], None] = lambda _: None,
):
    """Rounds alternating the reference and the clients; rates, latencies, failures, memory.
    ``progress`` gets the figures so far after each round (a long run leaves them behind)."""
    load(server.port, body, 2, clients)  # warm-up: every worker and connection once
    ref_n = max(5, per_client * clients // (ROUNDS * 16))
    ref_wall = load_wall = 0.0
    latencies: list[float] = []
    failures: list[str] = []
    memory = [server.rss_mb()]
    share = [per_client // ROUNDS + (r < per_client % ROUNDS) for r in range(ROUNDS)]
    for r in range(ROUNDS):
        ref_wall += timed_calls(ref_n, in_process)
        wall, lat, fail = load(server.port, body, share[r], clients)
        load_wall, latencies, failures = load_wall + wall, latencies + lat, failures + fail
        memory.append(server.rss_mb())
        console.print(
            f"  round {r + 1}/{ROUNDS}: {len(lat) / wall:.1f} req/s, rss {memory[-1]:.0f} MB"
        )
        p50, p99 = np.percentile(np.array(latencies) * 1000, [50, 99])
        progress(
            {
                "rounds": r + 1,
                "p50": float(p50),
                "p99": float(p99),
                "ref": (r + 1) * ref_n / ref_wall,
                "rate": len(latencies) / load_wall,
                "n": len(latencies),
                "failures": len(failures),
                "memory": memory,
            }
        )
    p50, p99 = np.percentile(np.array(latencies) * 1000, [50, 99])
    return {
        "ref": ROUNDS * ref_n / ref_wall,
        "rate": len(latencies) / load_wall,
        "n": len(latencies),
        "p50": float(p50),
        "p99": float(p99),
        "failures": failures,
        "memory": memory,
    }


# ------------------------------------------------------------------ the stream


def stream_lockstep(port: int, frames: list[bytes], seconds: float) -> float:
    from websockets.sync.client import connect

    done = 0
    with connect(f"ws://127.0.0.1:{port}/v1/stream", max_size=None) as ws:
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            ws.send(frames[done % len(frames)])
            answer = json.loads(ws.recv(timeout=60))
            assert answer["type"] == "frame", answer
            done += 1
        return done / (time.perf_counter() - start)


# ------------------------------------------------------------------ hostile clients


def hold_stalled(port: int, n: int, ready: mp.Queue, results: mp.Queue) -> None:
    """Child process: open ``n`` connections that never finish their headers; report when the
    server closed each (seconds after it was opened)."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    sel = selectors.DefaultSelector()
    opened: dict[socket.socket, float] = {}
    failed = 0
    for _ in range(n):
        sock = socket.socket()
        sock.settimeout(10)
        try:
            sock.connect(("127.0.0.1", port))
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Stalled: ")
        except OSError:
            failed += 1
            sock.close()
            continue
        sock.setblocking(False)
        opened[sock] = time.monotonic()
        sel.register(sock, selectors.EVENT_READ)
    ready.put(len(opened))
    closed_after: list[float] = []
    deadline = time.monotonic() + 90
    while len(closed_after) < len(opened) and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=1.0):
            sock = key.fileobj
            try:
                data = sock.recv(4096)
            except OSError:
                data = b""
            if not data or b"408" in data:
                closed_after.append(time.monotonic() - opened[sock])
                sel.unregister(sock)
                sock.close()
    results.put((len(opened), failed, closed_after))


def stalled_flood(server: Server, total: int) -> dict:
    ctx = mp.get_context("spawn")
    ready, results = ctx.Queue(), ctx.Queue()
    halves = [total // 2, total - total // 2]
    log_before = server.log_bytes()
    children = [
        ctx.Process(target=hold_stalled, args=(server.port, n, ready, results)) for n in halves
    ]
    for c in children:
        c.start()

    def ask() -> tuple[float, bool]:
        t0 = time.perf_counter()
        try:
            ok = server.get("/health", timeout=10)[0] == 200
        except OSError:
            ok = False
        return time.perf_counter() - t0, ok

    opening: list[tuple[float, bool]] = []
    started = 0
    while started < len(children):  # while the children open their connections
        opening.append(ask())
        try:
            ready.get(timeout=0.25)
            started += 1
        except Exception:
            pass
    held = []
    for _ in range(40):  # all held now: ask for 10 s more
        held.append(ask())
        time.sleep(0.25)
    outcomes = [results.get(timeout=120) for _ in children]
    for c in children:
        c.join(30)
    closed = [t for o in outcomes for t in o[2]]
    return {
        "opened": sum(o[0] for o in outcomes),
        "refused": sum(o[1] for o in outcomes),
        "closed": len(closed),
        "closed_max_s": max(closed) if closed else float("nan"),
        "opening": _health(opening),
        "held": _health(held),
        "log_kb": (server.log_bytes() - log_before) / 1024,
    }


def _health(asked: list[tuple[float, bool]]) -> dict:
    seconds = [t for t, _ in asked]
    return {
        "n": len(asked),
        "failures": sum(not ok for _, ok in asked),
        "p50_s": float(np.median(seconds)),
        "max_s": max(seconds),
    }


def idle_streams(server: Server, photo: bytes, idle: int = 8) -> float:
    """``idle`` streams that never send a frame; seconds until a further client's frame is
    answered."""
    from websockets.sync.client import connect

    url = f"ws://127.0.0.1:{server.port}/v1/stream"
    with contextlib.ExitStack() as holding:
        for _ in range(idle):
            holding.enter_context(connect(url))
        start = time.perf_counter()
        with connect(url) as ws:
            ws.send(photo)
            while json.loads(ws.recv(timeout=120)).get("type") != "frame":
                pass
            return time.perf_counter() - start


def huge_png(server: Server) -> dict:
    from PIL import Image

    rng = np.random.default_rng(0)
    image = Image.new("1", (9400, 9500))
    image.paste(Image.fromarray(rng.random((1200, 1200)) > 0.5), (4000, 4000))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    before = server.rss_mb()
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
    body = multipart(buffer.getvalue(), "huge.png")
    t0 = time.perf_counter()
    conn.request(
        "POST",
        "/v1/predict",
        body=body,
        headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
    )
    response = conn.getresponse()
    answer = json.loads(response.read())
    took = time.perf_counter() - t0
    conn.close()
    return {
        "kb": buffer.tell() / 1024,
        "status": response.status,
        "message": answer.get("message", ""),
        "seconds": took,
        "grew_mb": server.rss_mb() - before,
    }


# ------------------------------------------------------------------ main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=1000, help="requests per client")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--compare", type=int, default=0, help="requests per client per mode")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the stream run")
    parser.add_argument("--hostile", action="store_true")
    parser.add_argument("--stalled", type=int, default=20_000)
    parser.add_argument("--write", action="store_true", help="record in docs/benchmarks.md")
    parser.add_argument("--save", type=Path, help="also write the raw results as JSON here")
    parser.add_argument(
        "--modes",
        default=",".join(MODES),
        help="comma-separated modes to compare (names as in the table)",
    )
    parser.add_argument(
        "--modes-from", type=Path, help="add the modes compared in an earlier run (its --save)"
    )
    parser.add_argument(
        "--torch-threads", type=int, default=1, help="intra-op threads of the reference"
    )
    args = parser.parse_args()
    import torch

    # One thread, as in bench_recognize.py: on a machine whose cores other jobs use, more
    # threads wait for each other at every operation and the reference would be slower.
    torch.set_num_threads(args.torch_threads)

    from ferlab.inference import load_model, shipped_models
    from ferlab.recognize import FrameResult, Recognizer, decode_image

    if "default" not in shipped_models():
        raise SystemExit("the shipped default model (ferlab/weights/default.pt) is missing")
    rec = Recognizer(model=load_model("default", device="cpu"))
    photo = PHOTO.read_bytes()
    body = multipart(photo)

    def in_process() -> dict:
        faces = rec.process_frame(decode_image(photo, "photo.jpg"), source="photo.jpg")
        return FrameResult("photo.jpg", 0, 0.0, None, faces).to_dict()

    assert len(in_process()["faces"]) == 1, "the benchmark photo must show one face"
    load_avg = os.getloadavg()[0]
    results: dict = {"modes": {}}

    def save(partial: dict | None = None) -> None:
        if args.save:
            args.save.write_text(json.dumps({**results, "partial": partial}, default=str))

    if args.modes_from:
        results["modes"].update(json.loads(args.modes_from.read_text())["modes"])
    if args.compare:
        chosen = [m.strip() for m in args.modes.split(",")]
        for label, extra in MODES.items():
            if label not in chosen:
                continue
            console.print(f"[bold]{label}[/]: {args.clients} clients × {args.compare}")
            server = Server(extra)
            try:
                results["modes"][label] = measure(
                    server, body, in_process, args.compare, args.clients, save
                )
            finally:
                server.stop()

    console.print(f"[bold]default mode[/]: {args.clients} clients × {args.requests}")
    server = Server([])
    try:
        results["main"] = measure(server, body, in_process, args.requests, args.clients, save)
        frames = [jpeg_shift(photo, shift) for shift in range(0, 120, 4)]  # the face drifting right
        from ferlab.serve.service import own_recognizer

        video = own_recognizer(rec, "none")
        track_wall = timed_calls(1, lambda: list(video.track(decode_image(f) for f in frames * 3)))
        results["stream"] = {
            "lockstep": stream_lockstep(server.port, frames, args.seconds),
            "track": 3 * len(frames) / track_wall,
        }
        if args.hostile:
            console.print(f"[bold]hostile[/]: {args.stalled} stalled connections")
            results["flood"] = stalled_flood(server, args.stalled)
            results["idle9"] = idle_streams(server, photo)
            results["png"] = huge_png(server)
            results["after"] = server.get("/health")[0]
    finally:
        server.stop()
    console.print_json(data=results, default=str)
    save()
    if args.write:
        write_section(args, load_avg, results)


def jpeg_shift(photo: bytes, shift: int) -> bytes:
    import cv2

    image = cv2.imdecode(np.frombuffer(photo, np.uint8), cv2.IMREAD_COLOR)
    return cv2.imencode(".jpg", np.roll(image, shift, axis=1))[1].tobytes()


def _row(label: str, r: dict) -> str:
    growth = max(r["memory"]) - r["memory"][0]
    return (
        f"| {label} | {r['n']} | {len(r['failures'])} | {r['rate']:.1f} | {r['ref']:.1f} | "
        f"**{r['rate'] / r['ref']:.2f}×** | {r['p50']:.0f} | {r['p99']:.0f} | "
        f"{r['p99'] / r['p50']:.1f} | {r['memory'][0]:.0f} → {r['memory'][-1]:.0f} "
        f"(max +{growth:.0f}) |"
    )


def write_section(args: argparse.Namespace, load_avg: float, results: dict) -> None:
    today = dt.date.today().isoformat()
    main_r = results["main"]
    lines = [
        SECTION,
        "",
        f"Script: `benchmarks/bench_serve.py --requests {args.requests} --clients {args.clients}"
        + (f" --compare {args.compare} --modes '{args.modes}'" if args.compare else "")
        + (" --modes-from earlier.json" if args.modes_from else "")
        + (" --hostile" if args.hostile else "")
        + f"`. Measured {today} on {machine(load_avg)}. **The machine was shared**: two "
        "trainings ran in the background (one thread each) and other developers' jobs came "
        "and went, so absolute rates are low and vary; every ratio below is against an "
        "in-process reference measured in the same run, in rounds alternating with the "
        "clients' rounds.",
        "",
        "Model: the shipped default model (ten-crop test-time augmentation, its own setting). "
        "Photo: `examples/astronaut.jpg` (512×512, one face). Server: `ferlab serve` in its "
        "own process on 127.0.0.1 with its default limits. Reference: the same recognizer "
        "in-process (decode + recognise + JSON dictionary), one call after another, "
        f"{args.torch_threads} PyTorch thread(s). Clients: threads with keep-alive "
        "connections in the benchmark's "
        "process (they share the two cores with the server).",
        "",
        "| server | requests | errors | requests/s | in-process/s | ratio | p50 ms | p99 ms "
        "| p99/p50 | server memory MB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for label, r in results["modes"].items():
        lines.append(_row(f"{label}, {args.clients} clients × {r['n'] // args.clients}", r))
    lines.append(
        _row(f"**default** (a worker per core), {args.clients} clients × {args.requests}", main_r)
    )
    if args.modes_from:
        lines += [
            "",
            "Rows of modes not run here come from an earlier run the same day with the same "
            "script (given with `--modes-from`); each row's ratio is against the reference "
            "measured in its own run.",
        ]
    stream = results["stream"]
    lines += [
        "",
        f"Stream: one client in lock-step gets **{stream['lockstep']:.1f} frames/s** against "
        f"{stream['track']:.1f} frames/s for the recognizer's video mode in-process on the same "
        f"frames ({stream['lockstep'] / stream['track']:.2f}×); both classify each face once "
        '(`tta="none"`, the setting of `ferlab video/live/light`).',
    ]
    if "flood" in results:
        f, png = results["flood"], results["png"]
        lines += [
            "",
            "Hostile clients, against the same server (default limits: 4,096 connections, "
            "20 s header timeout, 8 streams, 4 per client, 16-megapixel budget):",
            "",
            f"* **{f['opened']:,} connections that never finish their headers**, opened and "
            f"held at once by two client processes ({f['refused']} could not connect): the "
            "server keeps at most its cap of them, closing the oldest stalled one for each "
            f"newcomer; all {f['closed']:,} were closed by the server, the last "
            f"{f['closed_max_s']:.1f} s after it opened. `/health` while all are held "
            f"(asked {f['held']['n']} times in 10 s): {f['held']['failures']} failures, median "
            f"{1000 * f['held']['p50_s']:.0f} ms, **slowest {f['held']['max_s']:.2f} s**; "
            f"while they were being opened (asked {f['opening']['n']} times): "
            f"{f['opening']['failures']} failures, median "
            f"{1000 * f['opening']['p50_s']:.0f} ms, slowest {f['opening']['max_s']:.2f} s "
            "(during the opening the kernel's accept queue is as full for `/health` as for "
            "the flood). The server's log grew by "
            f"{f['log_kb']:.1f} kB.",
            f"* **Eight streams that never send a frame**: a ninth client's frame was answered "
            f"after **{results['idle9']:.1f} s** (idle streams give their place up after 5 s).",
            f"* **The 9400×9500 PNG** ({png['kb']:.0f} kB): answered {png['status']} in "
            f"**{png['seconds']:.2f} s**, server memory {png['grew_mb']:+.0f} MB: "
            f'"{png["message"]}"',
        ]
    write_doc_section(lines)


if __name__ == "__main__":
    main()
