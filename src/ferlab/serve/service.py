"""The state one running service holds: the recognizer, its worker threads and its limits.

Recognition runs on **worker threads**, outside the event loop, so the server keeps accepting
connections, answering ``/health`` and dropping stale stream frames while frames are being
processed. One worker per usable core by default (``ServeSettings.workers``): detection
(OpenCV) and the network (PyTorch, one intra-op thread each under ``ferlab serve``) release
the interpreter lock, so the workers run side by side. OpenCV's cascades keep per-call state,
so each thread scans with cascades of its own (the Haar detector keeps them per thread; other
detectors are copied per worker); the network is shared. Requests
wait for a worker in turn, at most ``max_pending`` of them (beyond that the service answers 503
at once instead of building an ever longer queue).

Streams classify each face once per frame (``tta="none"``), as ``ferlab video``, ``live`` and
``light`` do: smoothing over frames already averages what test-time augmentation would.
"""

from __future__ import annotations

import asyncio
import copy
import inspect
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from ferlab import __version__
from ferlab.inference import STREAM_TTA
from ferlab.light import LightMapper, WebhookSink, check_webhook_url
from ferlab.recognize import FrameResult, HaarDetector, Recognizer
from ferlab.recognize.align import FER_SIZE
from ferlab.serve.batching import BatchingClassifier
from ferlab.serve.errors import ApiError
from ferlab.serve.images import Decoded, decode_within
from ferlab.serve.settings import ServeSettings

__all__ = ["Service", "own_recognizer"]

T = TypeVar("T")


def _own_detector(detector: Any) -> Any | None:
    """A detector with the same settings as ``detector`` and state of its own, or ``None``.

    A detector that says it is ``thread_safe`` (:class:`HaarDetector`: a cascade per thread) is
    shared as it is. Others are built anew from their constructor's arguments when they keep
    them as attributes of the same names, else deep-copied; OpenCV cascades are not safe to run
    from two threads at once, so a copy still sharing a cascade with the original is not used.
    """
    import cv2

    if getattr(detector, "thread_safe", False):
        return detector
    params = inspect.signature(type(detector)).parameters
    try:
        if all(hasattr(detector, p) for p in params):
            twin = type(detector)(**{p: getattr(detector, p) for p in params})
        else:
            twin = copy.deepcopy(detector)
    except Exception:
        return None
    shared = [
        name
        for name, value in vars(detector).items()
        if isinstance(value, cv2.CascadeClassifier) and getattr(twin, name, None) is value
    ]
    return None if shared else twin


def _with_tta(recognizer: Recognizer, tta: str | None) -> Recognizer:
    """A shallow copy of ``recognizer`` whose classifier uses ``tta`` when it has that setting
    (the network itself is shared)."""
    twin = copy.copy(recognizer)
    if tta is not None and getattr(recognizer.classifier, "tta", tta) != tta:
        twin.classifier = copy.copy(recognizer.classifier)
        twin.classifier.tta = tta
    return twin


def own_recognizer(recognizer: Recognizer, tta: str | None = None) -> Recognizer | None:
    """A copy of ``recognizer`` with a detector of its own (safe to run beside the original)
    and, when ``tta`` is given and the classifier has that setting, that test-time
    augmentation; ``None`` when the detector cannot be duplicated."""
    detector = _own_detector(recognizer.detector)
    if detector is None:
        return None
    twin = _with_tta(recognizer, tta)
    twin.detector = detector
    return twin


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
        self._batcher: BatchingClassifier | None = None
        self._local = threading.local()
        # Grad-CAM hooks into the network: explanations get a copy of their own, one at a time.
        self._explain_lock = threading.Lock()
        self._explain_classifier: Any = None
        self.workers = settings.worker_count
        if self.workers > 1 and own_recognizer(recognizer) is None:
            self.workers = 1  # a detector that cannot be duplicated is not shared either
        self.pending = 0

    def open(self) -> None:
        """Start the recognition threads and the webhook (the application's startup)."""
        if self.settings.batch:
            self._batcher = BatchingClassifier(self.recognizer.classifier)
        self._executor = ThreadPoolExecutor(
            max_workers=self.workers, thread_name_prefix="ferlab-recognize"
        )
        if self.settings.webhook_url:
            self.webhook = WebhookSink(
                self.settings.webhook_url, min_interval=self.settings.webhook_interval
            )

    def close(self) -> None:
        """Finish the work in progress and stop (the application's shutdown)."""
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None
        if self._batcher is not None:
            self._batcher.close()
            self._batcher = None
        if self.webhook is not None:
            self.webhook.close()
            self.webhook = None

    def worker_recognizer(self) -> Recognizer:
        """The calling worker thread's own recognizer (made on its first call)."""
        rec = getattr(self._local, "recognizer", None)
        if rec is None:
            rec = self.recognizer if self.workers == 1 else own_recognizer(self.recognizer)
            if self._batcher is not None:
                rec = copy.copy(rec)
                rec.classifier = self._batcher
            self._local.recognizer = rec
        return rec

    def stream_recognizer(self) -> Recognizer:
        """A recognizer for one stream: a detector of its own (the stream's frames may run on
        any worker) and the video modes' per-face setting."""
        # A detector that cannot be duplicated runs on the one worker there is, shared.
        return own_recognizer(self.recognizer, STREAM_TTA) or _with_tta(self.recognizer, STREAM_TTA)

    def decode(self, data: bytes, name: str) -> Decoded:
        """An upload or frame decoded within the pixel budget (see :mod:`.images`)."""
        return decode_within(data, name, self.settings.max_pixels)

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
            ApiError: 422 when the bytes are not a readable image; 413 beyond the pixel budget.
        """
        decoded = self.decode(data, name)
        faces = self.worker_recognizer().process_frame(decoded.image, source=name)
        out = FrameResult(name, 0, 0.0, None, faces).to_dict()
        for face in out["faces"]:
            face["box"] = decoded.box(face["box"])
        return out

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
        from ferlab.inference import EmotionModel

        # A ferlab model on ONNX Runtime is explained with its PyTorch twin (ferlab.explain).
        if not isinstance(network, nn.Module) and not isinstance(
            self.recognizer.classifier, EmotionModel
        ):
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

        from ferlab.recognize import crop_faces

        tools = self.explainer()
        if isinstance(tools, str):
            raise ApiError(501, tools)
        face_heatmap, overlay_heatmap = tools
        decoded = self.decode(data, name)
        image = decoded.image
        faces = self.worker_recognizer().process_frame(image, source=name)
        out: dict[str, Any] = {"source": name, "method": "gradcam", "faces": []}
        if not faces:
            return out
        gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        crops, _ = crop_faces(gray, [f.box for f in faces], self.recognizer.align)
        with self._explain_lock:
            if self._explain_classifier is None:
                served = self.recognizer.classifier
                # A model ONNX Runtime serves is explained with its PyTorch twin, loaded apart.
                onnx = getattr(served, "runtime", None) == "onnx"
                self._explain_classifier = served if onnx else copy.deepcopy(served)
            maps = face_heatmap(self._explain_classifier, crops, method="gradcam")
        for face, crop, heat in zip(faces, crops, maps, strict=True):
            picture = overlay_heatmap(crop, heat)
            side = 4 * picture.shape[0]
            picture = cv2.resize(picture, (side, side), interpolation=cv2.INTER_NEAREST)
            ok, png = cv2.imencode(".png", picture)
            if not ok:
                raise ApiError(500, "could not encode the heat map as PNG")
            url = "data:image/png;base64," + base64.b64encode(png.tobytes()).decode("ascii")
            out["faces"].append(
                {
                    "face_id": face.face_id,
                    "box": decoded.box(face.box),
                    "label": face.label,
                    "image": url,
                }
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
