"""``WS /v1/stream``: camera frames in, faces with smoothed emotions and the light colour out.

The client sends each frame as one binary message holding a JPEG (or any image format the
server reads). Every connection has its own face tracker (stable ``face_id`` and probabilities
smoothed along each track, as in ``ferlab video``) and its own ambient light.

**Back-pressure.** A connection has at most one frame in recognition. Frames are read as soon as
they arrive, and one arriving while another is being processed waits in a single slot; a newer
one replaces it, and the replaced frame is counted as dropped. So a client sending faster than
the server can process always gets answers about its newest frame, never a growing backlog,
and every answer carries the ``received``, ``processed`` and ``dropped`` counts.

Each answer is a JSON text message, :class:`~ferlab.serve.schemas.StreamFrame`; a frame that is
not a readable image gets ``{"type": "error", "frame": i, "message": ...}`` and the stream goes
on. A missing or wrong API key closes the connection with code 1008, too many open streams with
1013, each after an error message saying why.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import numpy as np
from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from ferlab.errors import DataError
from ferlab.recognize import decode_image
from ferlab.serve.errors import INTERNAL_ERROR, ApiError, log
from ferlab.serve.schemas import StreamFrame
from ferlab.serve.security import key_matches
from ferlab.serve.service import Service
from ferlab.serve.settings import API_KEY_HEADER

__all__ = ["router"]

router = APIRouter()


@router.websocket("/v1/stream")
async def stream(ws: WebSocket) -> None:
    svc: Service = ws.app.state.service
    await ws.accept()
    supplied = ws.headers.get(API_KEY_HEADER) or ws.query_params.get("api_key")
    if not key_matches(svc.settings.api_key, supplied):
        problem = "missing" if supplied is None else "wrong"
        await _refuse(ws, 1008, f"{problem} API key: send it in the api_key query parameter")
        return
    if svc.streams >= svc.settings.max_streams:
        await _refuse(ws, 1013, f"too many streams ({svc.streams} open); try again later")
        return
    svc.streams += 1
    try:
        await _Session(ws, svc).run()
    finally:
        svc.streams -= 1


async def _refuse(ws: WebSocket, code: int, message: str) -> None:
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
        self.light = svc.new_light()
        self.feeder = _Feeder()
        # Recognizer.track runs detection with the video-mode scan schedule, tracking and
        # smoothing; each next() processes the frame just put into the feeder.
        self.tracked = svc.recognizer.track(self.feeder, source="stream")
        self.slot: tuple[int, bytes, float] | None = None
        self.wake = asyncio.Event()
        self.send_lock = asyncio.Lock()
        self.received = self.processed = self.dropped = 0

    async def run(self) -> None:
        worker = asyncio.create_task(self._process())
        try:
            await self._receive()
        except WebSocketDisconnect:
            pass
        finally:
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, RuntimeError):
                await worker

    async def _send(self, message: dict[str, Any]) -> None:
        async with self.send_lock:
            await self.ws.send_json(message)

    async def _receive(self) -> None:
        limit = self.svc.settings.max_upload_bytes
        while True:
            message = await self.ws.receive()
            if message["type"] == "websocket.disconnect":
                return
            data = message.get("bytes")
            index = self.received
            self.received += 1
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
        """Runs on the recognition thread: decode, track, smooth, colour."""
        try:
            image = decode_image(data, f"frame {index}")
        except DataError as exc:
            raise ApiError(422, str(exc), "invalid_image") from None
        self.feeder.frame = image
        try:
            result = next(self.tracked)
        except Exception:
            # A generator that raised is finished; the next frame starts a fresh tracker.
            self.tracked = self.svc.recognizer.track(self.feeder, source="stream")
            raise
        light = self.light.update([f.scores for f in result.faces])
        if self.svc.webhook is not None:
            self.svc.webhook.send(light)
        faces = [
            {k: v for k, v in f.to_dict().items() if k not in ("source", "frame", "time")}
            for f in result.faces
        ]
        h, w = image.shape[:2]
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
