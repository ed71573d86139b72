"""``WS /v1/stream``: camera frames in, faces with smoothed emotions and the light colour out.

The client sends each frame as one binary message holding a JPEG (or any image format the
server reads). Every connection has its own face tracker (stable ``face_id`` and probabilities
smoothed along each track, as in ``ferlab video``, with the same one-pass-per-face setting) and
its own ambient light.

**Back-pressure.** A connection has at most one frame in recognition. Frames are read as soon as
they arrive, and one arriving while another is being processed waits in a single slot; a newer
one replaces it, and the replaced frame is counted as dropped. So a client sending faster than
the server can process always gets answers about its newest frame, never a growing backlog,
and every answer carries the ``received``, ``processed`` and ``dropped`` counts.

**Key.** With an API key, the client sends it in the ``X-API-Key`` header or, as browsers
cannot set WebSocket headers, as its first message ``{"type": "auth", "api_key": "..."}``,
within :data:`AUTH_TIMEOUT` seconds; never in the URL, where logs and browser history keep it.

**Places.** At most ``max_streams`` streams are open, ``max_streams_per_client`` from one
address. A stream that has sent no frame for ``stream_idle_timeout`` seconds is closed (code
1001); when every place is taken, one idle for :data:`YIELD_AFTER` seconds gives its place up
to a newcomer (1001 too), and otherwise the newcomer waits up to ``stream_wait`` seconds for a
place. So streams that never send a frame cannot lock the others out.

Each answer is a JSON text message, :class:`~ferlab.serve.schemas.StreamFrame`; a frame that is
not a readable image gets ``{"type": "error", "frame": i, "message": ...}`` and the stream goes
on. A missing or wrong API key closes the connection with code 1008, no place within the wait
with 1013, each after an error message saying why.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from ferlab.recognize import FrameResult, Recognizer
from ferlab.serve.errors import INTERNAL_ERROR, ApiError, log
from ferlab.serve.schemas import StreamFrame
from ferlab.serve.security import key_matches
from ferlab.serve.service import Service
from ferlab.serve.settings import API_KEY_HEADER, ServeSettings

__all__ = ["AUTH_TIMEOUT", "YIELD_AFTER", "StreamPlaces", "router"]

router = APIRouter()

#: Seconds a client without the key in a header has to send it as its first message.
AUTH_TIMEOUT = 10.0
#: Seconds without a frame after which a stream gives its place up to a newcomer.
YIELD_AFTER = 5.0
#: Close code of a stream ended by the server for idleness ("going away").
GOING_AWAY = 1001


class StreamPlaces:
    """The open streams' places: at most ``max_streams``, ``max_streams_per_client`` per client
    address; newcomers take an idle stream's place or wait for one (see the module)."""

    def __init__(self, settings: ServeSettings) -> None:
        self.total = settings.max_streams
        self.per_client = settings.max_streams_per_client
        self.wait = settings.stream_wait
        self.open: list[_Session] = []
        self.waiting = 0
        self._freed = asyncio.Event()

    async def take(self, session: _Session) -> str | None:
        """Give ``session`` a place; the reason why not when none came within the wait."""
        if self.waiting >= self.total:
            return f"too many streams waiting for a place ({self.waiting}); try again later"
        deadline = time.monotonic() + self.wait
        self.waiting += 1
        try:
            while True:
                problem = self._try(session)
                left = deadline - time.monotonic()
                if problem is None or left <= 0:
                    return problem
                # A place frees up when a stream ends, or an open one passes YIELD_AFTER idle.
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._freed.wait(), min(left, 1.0))
        finally:
            self.waiting -= 1

    def _try(self, session: _Session) -> str | None:
        mine = [s for s in self.open if s.client == session.client]
        if len(self.open) < self.total and len(mine) < self.per_client:
            self._place(session)
            return None
        crowded = mine if len(mine) >= self.per_client else self.open
        idlest = min(crowded, key=lambda s: s.last_frame)
        idle = time.monotonic() - idlest.last_frame
        if idle >= YIELD_AFTER:
            idlest.end(f"no frame for {idle:.0f} s: this stream gave its place to a new one")
            self.open.remove(idlest)
            self._place(session)
            return None
        if len(mine) >= self.per_client:
            return f"this client has {len(mine)} streams open, the most allowed; try again later"
        return f"too many streams ({len(self.open)} open); try again later"

    def _place(self, session: _Session) -> None:
        session.last_frame = time.monotonic()  # its idle time counts from its place, not its wait
        self.open.append(session)

    def release(self, session: _Session) -> None:
        if session in self.open:
            self.open.remove(session)
        self._freed.set()
        self._freed = asyncio.Event()


@router.websocket("/v1/stream")
async def stream(ws: WebSocket) -> None:
    svc: Service = ws.app.state.service
    places: StreamPlaces = ws.app.state.stream_places
    await ws.accept()
    expected = svc.settings.api_key
    if expected is not None:
        problem = await _check_key(ws, expected)
        if problem is not None:
            await _refuse(ws, 1008, problem)
            return
    session = _Session(ws, svc)
    problem = await places.take(session)
    if problem is not None:
        await _refuse(ws, 1013, problem)
        return
    try:
        await session.run()
    finally:
        places.release(session)


async def _check_key(ws: WebSocket, expected: str) -> str | None:
    """Why the client's key does not open the stream, or ``None`` when it does."""
    how = (
        f"send it in the {API_KEY_HEADER} header or as the first message "
        '{"type": "auth", "api_key": "..."}'
    )
    supplied = ws.headers.get(API_KEY_HEADER)
    if supplied is None:
        if "api_key" in ws.query_params:
            return f"the API key never goes in a URL, where logs keep it: {how}"
        try:
            first = await asyncio.wait_for(ws.receive(), AUTH_TIMEOUT)
        except asyncio.TimeoutError:
            return f"no API key within {AUTH_TIMEOUT:g} s: {how}"
        supplied = _auth_message(first)
    if not key_matches(expected, supplied):
        return f"{'missing' if supplied is None else 'wrong'} API key: {how}"
    return None


def _auth_message(message: dict[str, Any]) -> str | None:
    """The key in a ``{"type": "auth", "api_key": ...}`` text message, else ``None``."""
    try:
        body = json.loads(message.get("text") or "")
    except ValueError:
        return None
    if isinstance(body, dict) and body.get("type") == "auth":
        key = body.get("api_key")
        return key if isinstance(key, str) else None
    return None


async def _refuse(ws: WebSocket, code: int, message: str) -> None:
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):
        await ws.send_json({"type": "error", "message": message})
        await ws.close(code, message[:120])


class _Feeder:
    """The frame source of one connection's tracking loop: yields whatever frame was put last."""

    def __init__(self) -> None:
        self.frame: np.ndarray | None = None

    def __iter__(self) -> _Feeder:
        return self

    def __next__(self) -> np.ndarray:
        frame, self.frame = self.frame, None
        if frame is None:
            raise StopIteration
        return frame


class _Session:
    def __init__(self, ws: WebSocket, svc: Service) -> None:
        self.ws, self.svc = ws, svc
        self.client = ws.client.host if ws.client else ""
        self.last_frame = time.monotonic()
        self.ended: str | None = None
        self.receiver: asyncio.Task | None = None
        self.light = svc.new_light()
        self.feeder = _Feeder()
        self.recognizer: Recognizer | None = None
        self.tracked: Iterator[FrameResult] | None = None
        self.slot: tuple[int, bytes, float] | None = None
        self.wake = asyncio.Event()
        self.send_lock = asyncio.Lock()
        self.received = self.processed = self.dropped = 0

    def end(self, reason: str) -> None:
        """End the stream from outside (its place is given to another): close with 1001."""
        self.ended = reason
        if self.receiver is not None:
            self.receiver.cancel()

    async def run(self) -> None:
        # Recognizer.track runs detection with the video-mode scan schedule, tracking and
        # smoothing; each next() processes the frame just put into the feeder. The stream's
        # recognizer has a detector of its own, as its frames may run on any worker; loading
        # it takes a moment, so not on the event loop, and only once the stream has a place.
        loop = asyncio.get_running_loop()
        self.recognizer = await loop.run_in_executor(None, self.svc.stream_recognizer)
        if self.ended is not None:  # its place was given away meanwhile
            await _refuse(self.ws, GOING_AWAY, self.ended)
            return
        self.tracked = self.recognizer.track(self.feeder, source="stream")
        worker = asyncio.create_task(self._process())
        self.receiver = asyncio.create_task(self._receive())
        try:
            await asyncio.wait({self.receiver})
            if self.ended is not None:
                await _refuse(self.ws, GOING_AWAY, self.ended)
        finally:
            self.receiver.cancel()
            worker.cancel()
            for task in (self.receiver, worker):
                with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, RuntimeError):
                    await task

    async def _send(self, message: dict[str, Any]) -> None:
        async with self.send_lock:
            await self.ws.send_json(message)

    async def _receive(self) -> None:
        limit = self.svc.settings.max_upload_bytes
        idle_limit = self.svc.settings.stream_idle_timeout
        while True:
            left = self.last_frame + idle_limit - time.monotonic()
            try:
                message = await asyncio.wait_for(self.ws.receive(), max(left, 0.0))
            except asyncio.TimeoutError:
                self.ended = f"no frame for {idle_limit:g} s: stream closed"
                return
            except WebSocketDisconnect:
                return
            if message["type"] == "websocket.disconnect":
                return
            data = message.get("bytes")
            if data is None and _auth_message(message) is not None:
                continue  # a key sent though none is needed, or sent twice: nothing to answer
            index = self.received
            self.received += 1
            if data is not None:
                self.last_frame = time.monotonic()
            if data is None:
                await self._send(
                    {
                        "type": "error",
                        "frame": index,
                        "message": "send each frame as a binary message holding a JPEG image",
                    }
                )
            elif len(data) > limit:
                await self._send(
                    {
                        "type": "error",
                        "frame": index,
                        "message": f"frame of {len(data)} bytes is over the {limit} byte limit",
                    }
                )
            else:
                if self.slot is not None:
                    self.dropped += 1
                self.slot = (index, data, time.monotonic())
                self.wake.set()

    async def _process(self) -> None:
        while True:
            await self.wake.wait()
            self.wake.clear()
            if self.slot is None:
                continue
            (index, data, arrived), self.slot = self.slot, None
            try:
                answer = await self.svc.run(self._recognize, index, data)
            except ApiError as exc:
                if exc.status == 503:  # the server is saturated: this frame is dropped too
                    self.dropped += 1
                    continue
                await self._send({"type": "error", "frame": index, "message": exc.message})
                continue
            except Exception:
                log.exception("stream frame %d failed", index)
                await self._send({"type": "error", "frame": index, "message": INTERNAL_ERROR})
                continue
            self.processed += 1
            answer.received = self.received
            answer.processed = self.processed
            answer.dropped = self.dropped
            answer.latency_ms = round(1000 * (time.monotonic() - arrived), 2)
            await self._send(answer.model_dump())

    def _recognize(self, index: int, data: bytes) -> StreamFrame:
        """Runs on a recognition thread: decode, track, smooth, colour."""
        decoded = self.svc.decode(data, f"frame {index}")
        image = decoded.image
        self.feeder.frame = image
        try:
            result = next(self.tracked)
        except Exception:
            # A generator that raised is finished; the next frame starts a fresh tracker.
            self.tracked = self.recognizer.track(self.feeder, source="stream")
            raise
        light = self.light.update([f.scores for f in result.faces])
        if self.svc.webhook is not None:
            self.svc.webhook.send(light)
        faces = [
            {k: v for k, v in f.to_dict().items() if k not in ("source", "frame", "time")}
            for f in result.faces
        ]
        for face in faces:
            face["box"] = decoded.box(face["box"])
        h, w = (decoded.scale * side for side in image.shape[:2])
        return StreamFrame(
            frame=index,
            width=w,
            height=h,
            faces=faces,
            light=light.to_dict(),
            received=0,
            processed=0,
            dropped=0,
            latency_ms=0.0,
        )
