"""Ambient light: the faces' emotion probabilities as one RGB colour, smoothed, sent to sinks.

**Mapping.** Every emotion has a colour (:data:`DEFAULT_COLORS`, after the colours of Plutchik's
wheel of emotions: anger red, fear green, joy yellow, sadness blue, disgust purple, surprise light
blue; neutral is a warm white and FER+'s contempt sits between anger and disgust). The target
colour is the *probability-weighted* mean of all emotions' colours, not the top label's colour,
so a face that is 60 % happy and 40 % surprised gives a colour between yellow and light blue, and
an uncertain face a pale mix. The mean is taken in linear light (sRGB decoded, averaged,
re-encoded): averaged sRGB values come out too dark, a red/green half-half mix brown instead of
yellow. With several faces their probabilities are averaged first; with no face the light
heads for the ``idle`` colour (the neutral white by default).

**Smoothing.** Predictions on live video flicker between neighbouring emotions from frame to
frame. The light follows its target by an exponential moving average with a *time constant*
``tau`` (seconds): after a change of expression it has covered 63 % of the way after ``tau``,
95 % after ``3 tau``, whatever the frame rate (the weight of a new target is
``1 - exp(-dt / tau)`` for the ``dt`` seconds since the previous update). ``tau = 0`` turns it off.

**Sinks** receive each new colour: :class:`StdoutSink` prints JSON lines, :class:`WebhookSink`
POSTs ``{"r": .., "g": .., "b": ..}`` to a URL (a smart-light bridge, a home-automation hook),
rate-limited, from a background thread, with failures reported and never fatal; the web page of
``ferlab serve`` shows the colour as a swatch. ``docs/serve.md`` describes the settings.
"""

from __future__ import annotations

import json
import math
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, TextIO

import numpy as np

from ferlab.errors import DataError, FerlabError
from ferlab.labels import typed_label

__all__ = [
    "DEFAULT_COLORS",
    "Light",
    "LightMapper",
    "LightSink",
    "StdoutSink",
    "WebhookSink",
    "check_webhook_url",
    "parse_color",
    "parse_color_overrides",
]

RGB = tuple[int, int, int]

#: Emotion → colour (0-255 sRGB) used unless overridden; see the module docstring.
DEFAULT_COLORS: dict[str, RGB] = {
    "angry": (230, 30, 30),
    "disgust": (150, 60, 170),
    "fear": (20, 150, 70),
    "happy": (255, 215, 40),
    "sad": (40, 80, 220),
    "surprise": (40, 180, 230),
    "neutral": (255, 236, 210),
    "contempt": (190, 40, 110),
}


@dataclass(frozen=True)
class Light:
    """One colour of the ambient light (0-255 sRGB)."""

    r: int
    g: int
    b: int

    @property
    def hex(self) -> str:
        return f"#{self.r:02x}{self.g:02x}{self.b:02x}"

    def to_dict(self) -> dict[str, int | str]:
        """``{"r", "g", "b", "hex"}``: what the stream, the page and stdout carry."""
        return {"r": self.r, "g": self.g, "b": self.b, "hex": self.hex}


def parse_color(text: str) -> RGB:
    """``#RRGGBB``, ``RRGGBB`` or ``R,G,B`` (0-255) as an RGB tuple.

    Raises:
        FerlabError: the text is none of those forms.
    """
    value = text.strip()
    hexa = value.removeprefix("#")
    if len(hexa) == 6 and all(c in "0123456789abcdefABCDEF" for c in hexa):
        return int(hexa[0:2], 16), int(hexa[2:4], 16), int(hexa[4:6], 16)
    parts = value.split(",")
    if len(parts) == 3 and all(p.strip().isdigit() for p in parts):
        rgb = tuple(int(p) for p in parts)
        if all(0 <= v <= 255 for v in rgb):
            return rgb  # type: ignore[return-value]
    raise FerlabError(f"colour '{text}' is not #RRGGBB or R,G,B with values 0-255")


def parse_color_overrides(items: Iterable[str]) -> dict[str, RGB]:
    """``EMOTION=COLOUR`` strings (the ``--color`` option) as a mapping, keyed by ferlab's
    emotion names (``happiness=...`` sets ``happy``: :mod:`ferlab.labels`)."""
    out: dict[str, RGB] = {}
    for item in items:
        name, sep, color = item.partition("=")
        if not sep or not name.strip():
            raise FerlabError(
                f"--color '{item}' must look like EMOTION=#RRGGBB, e.g. happy=#ffd000"
            )
        out[typed_label(name)] = parse_color(color)
    return out


def _to_linear(rgb: np.ndarray) -> np.ndarray:
    c = rgb / 255.0
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def _to_srgb(linear: np.ndarray) -> np.ndarray:
    c = np.clip(linear, 0.0, 1.0)
    return 255.0 * np.where(c <= 0.0031308, c * 12.92, 1.055 * c ** (1 / 2.4) - 0.055)


class LightMapper:
    """Emotion probabilities → a smoothed light colour (see the module docstring).

    Args:
        colors: colours by emotion name, replacing those of :data:`DEFAULT_COLORS` they name
            (FER+'s spellings, ``happiness``, ``sadness``, ``anger``, are accepted).
        tau: smoothing time constant in seconds (0 = follow each frame at once).
        idle: colour with no face in view (default: the ``neutral`` colour).
    """

    def __init__(
        self,
        colors: Mapping[str, RGB] | None = None,
        *,
        tau: float = 1.0,
        idle: RGB | None = None,
    ) -> None:
        if not (tau >= 0.0 and math.isfinite(tau)):
            raise FerlabError(f"light smoothing tau must be >= 0 seconds, got {tau}")
        self.overrides = {typed_label(k): v for k, v in (colors or {}).items()}
        self.colors: dict[str, RGB] = {**DEFAULT_COLORS, **self.overrides}
        for name, rgb in self.colors.items():
            if len(rgb) != 3 or not all(isinstance(v, int) and 0 <= v <= 255 for v in rgb):
                raise FerlabError(f"colour of '{name}' must be three integers 0-255, got {rgb}")
        self.tau = tau
        self.idle: RGB = idle if idle is not None else self.colors["neutral"]
        self._linear = {
            k: _to_linear(np.asarray(v, dtype=np.float64)) for k, v in self.colors.items()
        }
        self._state: np.ndarray | None = None
        self._last_time: float | None = None

    def check_labels(self, labels: Sequence[str]) -> None:
        """Fail early when the classifier has emotions this mapping has no colour for, or a
        colour was given for a name that is not one of its emotions (a typo, most likely)."""
        labels = [typed_label(label) for label in labels]
        unknown = [name for name in self.overrides if name not in labels]
        if unknown:
            raise FerlabError(
                f"a light colour was given for '{unknown[0]}', which is not one of the model's "
                f"emotions: {', '.join(labels)}"
            )
        missing = [label for label in labels if label not in self.colors]
        if missing:
            raise FerlabError(
                f"no light colour for {', '.join(missing)}; give one with "
                f"--color {missing[0]}=#RRGGBB (or colors={{'{missing[0]}': (r, g, b)}})"
            )

    def target(self, faces: Sequence[Mapping[str, float]]) -> np.ndarray:
        """The unsmoothed colour, in linear light, for these faces' probabilities."""
        if not faces:
            return _to_linear(np.asarray(self.idle, dtype=np.float64))
        total = np.zeros(3)
        weight = 0.0
        for scores in faces:
            for label, p in scores.items():
                color = self._linear.get(typed_label(label))
                if color is None:
                    raise FerlabError(f"no light colour for '{label}'")
                total += p * color
                weight += p
        if weight <= 0.0:
            return _to_linear(np.asarray(self.idle, dtype=np.float64))
        return total / weight

    def update(self, faces: Sequence[Mapping[str, float]], now: float | None = None) -> Light:
        """Move the light towards the colour of ``faces`` (one probability mapping per face).

        ``now`` is the time in seconds (default: a monotonic clock); the first update jumps
        straight to the target.
        """
        now = time.monotonic() if now is None else now
        goal = self.target(faces)
        if self._state is None or self._last_time is None or self.tau == 0.0:
            self._state = goal
        else:
            dt = max(0.0, now - self._last_time)
            weight = 1.0 - math.exp(-dt / self.tau)
            self._state = weight * goal + (1.0 - weight) * self._state
        self._last_time = now
        r, g, b = (int(v) for v in np.rint(_to_srgb(self._state)))
        return Light(r, g, b)

    def reset(self) -> None:
        """Forget the current colour (the next update jumps to its target)."""
        self._state = None
        self._last_time = None


class LightSink(Protocol):
    """Where light colours go."""

    def send(self, light: Light) -> None: ...

    def close(self) -> None: ...


class StdoutSink:
    """One JSON line per colour: ``{"time": seconds since start, "r", "g", "b", "hex"}``."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream if stream is not None else sys.stdout
        self._start = time.monotonic()

    def send(self, light: Light) -> None:
        record = {"time": round(time.monotonic() - self._start, 3), **light.to_dict()}
        self.stream.write(json.dumps(record) + "\n")
        self.stream.flush()

    def close(self) -> None:
        self.stream.flush()


class WebhookSink:
    """POSTs ``{"r": .., "g": .., "b": ..}`` as JSON to ``url`` whenever the colour changes.

    A light bridge must not be flooded at camera rate, and a slow or absent one must not stall
    recognition, so :meth:`send` only records the newest colour; a background thread posts it,
    at most once every ``min_interval`` seconds, skipping colours equal to the last one posted.
    The newest colour is always posted eventually (and on :meth:`close`). A failed POST
    (unreachable host, timeout, HTTP error) is counted in ``errors`` and reported through
    ``on_error`` (default: one line on stderr) when its message differs from the previous
    failure's; the next colour is tried as usual.

    Args:
        url: an ``http://`` or ``https://`` URL.
        min_interval: least seconds between two POSTs.
        timeout: seconds to wait for the bridge to answer.
        headers: extra request headers (an ``Authorization`` token, say).
        on_error: called with a one-line message on each newly failing POST.
    """

    def __init__(
        self,
        url: str,
        *,
        min_interval: float = 0.5,
        timeout: float = 2.0,
        headers: Mapping[str, str] | None = None,
        on_error: Callable[[str], None] | None = None,
    ) -> None:
        check_webhook_url(url)
        if min_interval < 0 or timeout <= 0:
            raise FerlabError(
                f"webhook min_interval must be >= 0 and timeout > 0, got {min_interval}, {timeout}"
            )
        self.url = url
        self.min_interval = min_interval
        self.timeout = timeout
        self.headers = {"Content-Type": "application/json", **(headers or {})}
        self.on_error = on_error or _print_error
        self.posted = 0
        self.errors = 0
        self.last_error: str | None = None
        self._pending: Light | None = None
        self._last_sent: Light | None = None
        self._last_time = -math.inf
        self._closed = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="ferlab-webhook", daemon=True)
        self._thread.start()

    def send(self, light: Light) -> None:
        with self._cond:
            if self._closed:
                raise FerlabError("the webhook sink is closed")
            self._pending = light
            self._cond.notify()

    def close(self, timeout: float | None = None) -> None:
        """Post the newest colour if it is still pending, then stop the thread."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join(timeout if timeout is not None else self.timeout + self.min_interval + 1)

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._pending is None and not self._closed:
                    self._cond.wait()
                if self._pending is None:  # closed with nothing left to post
                    return
                wait = self._last_time + self.min_interval - time.monotonic()
                if wait > 0 and not self._closed:
                    self._cond.wait(wait)  # a newer colour may replace the pending one meanwhile
                    continue
                light, self._pending = self._pending, None
            if light != self._last_sent:
                self._post(light)
                self._last_time = time.monotonic()

    def _post(self, light: Light) -> None:
        body = json.dumps({"r": light.r, "g": light.g, "b": light.b}).encode()
        request = urllib.request.Request(self.url, data=body, headers=self.headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                response.read()
        except urllib.error.HTTPError as exc:
            self._failed(f"HTTP {exc.code} {exc.reason}")
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            self._failed(str(reason))
        else:
            self.posted += 1
            self._last_sent = light
            self.last_error = None

    def _failed(self, message: str) -> None:
        self.errors += 1
        if message != self.last_error:
            self.on_error(f"webhook {self.url}: {message}")
        self.last_error = message


def check_webhook_url(url: str) -> None:
    """Only web URLs: urllib would also open ``file://`` and ``ftp://`` ones.

    Raises:
        DataError: the URL is not ``http://`` or ``https://``.
    """
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in ("http", "https") or not rest:
        raise DataError("webhook URL must start with http:// or https://", field="url")


def _print_error(message: str) -> None:
    sys.stderr.write(f"warning: {message}\n")
