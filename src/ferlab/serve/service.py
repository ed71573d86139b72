"""The state one running service holds: the recognizer, its worker thread and its limits.

Recognition runs on **one worker thread**, outside the event loop, so the server keeps accepting
connections, answering ``/health`` and dropping stale stream frames while a frame is being
processed. One thread, because OpenCV's cascade detector is not documented as safe to share
between threads and PyTorch already spreads each forward pass over the CPU's cores; requests
wait for it in turn, at most ``max_pending`` of them (beyond that the service answers 503 at
once instead of building an ever longer queue).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import numpy as np

from ferlab import __version__
from ferlab.light import LightMapper, WebhookSink, check_webhook_url
from ferlab.recognize import FrameResult, HaarDetector, Recognizer, decode_image
from ferlab.recognize.align import FER_SIZE
from ferlab.serve.errors import ApiError
from ferlab.serve.settings import ServeSettings

__all__ = ["Service"]

T = TypeVar("T")


class Service:
    """Everything the routes share; built once in the application's lifespan."""

    def __init__(self, recognizer: Recognizer, settings: ServeSettings) -> None:
        self.recognizer = recognizer
        self.settings = settings
        self.version = __version__
        self.light_template = LightMapper(settings.light_colors, tau=settings.light_tau)
        self.light_template.check_labels(recognizer.labels)
        if settings.webhook_url:  # the sink itself is opened with the application
            check_webhook_url(settings.webhook_url)
        self.webhook: WebhookSink | None = None
        self._executor: ThreadPoolExecutor | None = None
        self.pending = 0
        self.streams = 0

    def open(self) -> None:
        """Start the recognition thread and the webhook (the application's startup)."""
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ferlab-recognize")
        if self.settings.webhook_url:
            self.webhook = WebhookSink(
                self.settings.webhook_url, min_interval=self.settings.webhook_interval
            )

    def close(self) -> None:
        """Finish the work in progress and stop (the application's shutdown)."""
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None
        if self.webhook is not None:
            self.webhook.close()
            self.webhook = None

    def new_light(self) -> LightMapper:
        """A light of its own for one stream, with the service's colours and smoothing."""
        t = self.light_template
        return LightMapper(t.colors, tau=t.tau, idle=t.idle)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on the recognition thread; 503 when too much work is waiting."""
        if self.pending >= self.settings.max_pending:
            raise ApiError(
                503, f"server busy: {self.pending} requests in progress; retry in a moment"
            )
        if self._executor is None:
            raise ApiError(503, "the service is not running (starting up or shutting down)")
        self.pending += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)
        finally:
            self.pending -= 1

    def predict(self, data: bytes, name: str) -> dict[str, Any]:
        """Faces in one uploaded image, as ``ferlab predict --json`` prints them for a file.

        Raises:
            ApiError: 422 when the bytes are not a readable image or a decompression bomb.
        """
        from ferlab.errors import DataError

        try:
            image = decode_image(data, name)
        except DataError as exc:
            raise ApiError(422, str(exc), "invalid_image") from None
        faces = self.recognizer.process_frame(image, source=name)
        return FrameResult(name, 0, 0.0, None, faces).to_dict()

    def explainer(self) -> tuple[Callable[..., Any], Callable[..., Any]] | str:
        """``ferlab.explain``'s ``(face_heatmap, overlay_heatmap)``, or why there are none."""
        network = getattr(self.recognizer.classifier, "network", None)
        if network is None:
            return (
                "explanations need a ferlab model (ferlab.load_model); this server's classifier "
                f"is a {type(self.recognizer.classifier).__name__}"
            )
        try:
            from torch import nn

            from ferlab.explain import face_heatmap, overlay_heatmap
        except ImportError as exc:
            return f"explanations need ferlab.explain and PyTorch, which this install lacks ({exc})"
        if not isinstance(network, nn.Module):
            return (
                "explanations need the model run by PyTorch (Grad-CAM takes gradients); this "
                f"server runs it with {type(network).__name__} (start it with --runtime torch)"
            )
        return face_heatmap, overlay_heatmap

    def explain(self, data: bytes, name: str) -> dict[str, Any]:
        """Each face's Grad-CAM heat map over its aligned crop, as PNG data URLs.

        The crops are the ones the classifier saw (detected, levelled, 48×48), shown 4× larger.
        """
        import base64

        import cv2

        from ferlab.errors import DataError
        from ferlab.recognize import align_crop

        tools = self.explainer()
        if isinstance(tools, str):
            raise ApiError(501, tools)
        face_heatmap, overlay_heatmap = tools
        try:
            image = decode_image(data, name)
        except DataError as exc:
            raise ApiError(422, str(exc), "invalid_image") from None
        faces = self.recognizer.process_frame(image, source=name)
        out: dict[str, Any] = {"source": name, "method": "gradcam", "faces": []}
        if not faces:
            return out
        gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        crops = np.stack([align_crop(gray, f.box, angle=f.roll or 0.0) for f in faces])
        maps = face_heatmap(self.recognizer.classifier, crops, method="gradcam")
        for face, crop, heat in zip(faces, crops, maps, strict=True):
            picture = overlay_heatmap(crop, heat)
            side = 4 * picture.shape[0]
            picture = cv2.resize(picture, (side, side), interpolation=cv2.INTER_NEAREST)
            ok, png = cv2.imencode(".png", picture)
            if not ok:
                raise ApiError(500, "could not encode the heat map as PNG")
            url = "data:image/png;base64," + base64.b64encode(png.tobytes()).decode("ascii")
            out["faces"].append(
                {"face_id": face.face_id, "box": list(face.box), "label": face.label, "image": url}
            )
        return out

    def model_info(self) -> dict[str, Any]:
        """Labels, input size and recorded accuracy of the classifier (``GET /v1/models``)."""
        classifier = self.recognizer.classifier
        meta = getattr(classifier, "meta", None) or {}
        metrics = meta.get("metrics") or {}
        splits = [s for s in ("val", "test") if isinstance(metrics.get(s), dict)]
        return {
            "name": getattr(classifier, "name", type(classifier).__name__),
            "labels": list(self.recognizer.labels),
            "input_size": list(getattr(classifier, "input_size", (1, FER_SIZE, FER_SIZE))),
            "accuracy": {s: metrics[s]["accuracy"] for s in splits if "accuracy" in metrics[s]},
            "macro_f1": {s: metrics[s]["macro_f1"] for s in splits if "macro_f1" in metrics[s]},
            "tta": getattr(classifier, "tta", None),
            "detector": _detector_name(self.recognizer.detector),
        }


def _detector_name(detector: object) -> str:
    if isinstance(detector, HaarDetector):
        return "haar-profile" if detector.profile else "haar"
    return type(detector).__name__
