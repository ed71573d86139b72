"""Typed shapes of the service's JSON, which also document it in the OpenAPI schema (``/docs``).

The prediction shapes mirror :meth:`ferlab.recognize.FrameResult.to_dict`, the JSON that
``ferlab predict --json`` prints, which the service returns unchanged.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

__all__ = [
    "ExplainResponse",
    "ExplainedFace",
    "FaceOut",
    "Health",
    "LightColor",
    "LightConfig",
    "ModelInfo",
    "PredictResponse",
    "StreamFace",
    "StreamFrame",
]


class Health(BaseModel):
    status: str = Field(description="'ok' once the model is loaded.")
    version: str
    auth: bool = Field(description="Whether /v1 routes want an API key.")


class ModelInfo(BaseModel):
    name: str = Field(description="Model name or checkpoint file stem; the class for objects.")
    labels: list[str] = Field(description="Emotion names, in the order of the probabilities.")
    input_size: list[int] = Field(description="(channels, height, width) of a face crop.")
    accuracy: dict[str, float] = Field(
        description="Accuracy recorded in the checkpoint, by split (val, test); empty if none."
    )
    macro_f1: dict[str, float] = Field(description="Macro-averaged F1 recorded, by split.")
    tta: str | None = Field(description="Test-time augmentation used in prediction.")
    detector: str = Field(description="Face detector.")


class FaceOut(BaseModel):
    """One face, as in ``ferlab predict --json``."""

    frame: int
    time: float
    face_id: int = Field(description="Reading-order index in a photo, track id in a stream.")
    box: list[int] = Field(description="[x, y, w, h] in pixels of the upright image.")
    score: float = Field(description="Detector confidence (the cascade's level weight).")
    roll: float | None = Field(description="Head roll in degrees, when the eyes were found.")
    label: str
    scores: dict[str, float] = Field(description="Probability of each emotion.")


class PredictResponse(BaseModel):
    """One image's faces, exactly the object ``ferlab predict --json`` prints for a file."""

    source: str = Field(description="The uploaded file's name.")
    frame: int
    time: float
    faces: list[FaceOut]


class ExplainedFace(BaseModel):
    face_id: int
    box: list[int]
    label: str
    image: str = Field(description="PNG data URL: the face crop with its heat map over it.")


class ExplainResponse(BaseModel):
    source: str
    method: str
    faces: list[ExplainedFace]


class LightColor(BaseModel):
    r: int
    g: int
    b: int
    hex: str


class LightConfig(BaseModel):
    colors: dict[str, LightColor] = Field(description="Colour of each emotion.")
    idle: LightColor = Field(description="Colour with no face in view.")
    tau: float = Field(description="Smoothing time constant in seconds.")


class StreamFace(BaseModel):
    face_id: int = Field(description="Track id, stable while the face stays in view.")
    box: list[int]
    score: float
    roll: float | None
    label: str
    scores: dict[str, float] = Field(description="Probabilities smoothed along the track.")


class StreamFrame(BaseModel):
    """What ``/v1/stream`` answers for each frame it processed."""

    type: str = "frame"
    frame: int = Field(description="Index of the frame among those received (from 0).")
    width: int
    height: int
    faces: list[StreamFace]
    light: LightColor
    received: int = Field(description="Frames received on this connection so far.")
    processed: int = Field(description="Frames processed so far.")
    dropped: int = Field(description="Frames replaced by a newer one before processing.")
    latency_ms: float = Field(description="Milliseconds from receipt to answer.")
