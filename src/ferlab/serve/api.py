"""The REST routes: health, model description, light settings, prediction and explanation."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from ferlab.light import Light
from ferlab.serve.errors import ApiError, ErrorBody
from ferlab.serve.schemas import ExplainResponse, Health, LightConfig, ModelInfo, PredictResponse
from ferlab.serve.security import require_api_key
from ferlab.serve.service import Service
from ferlab.serve.uploads import FIELD, read_upload

__all__ = ["router"]

router = APIRouter()
v1 = APIRouter(prefix="/v1", dependencies=[Depends(require_api_key)])

_UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": [FIELD],
                    "properties": {FIELD: {"type": "string", "format": "binary"}},
                }
            }
        },
    }
}
_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody, "description": text}
    for code, text in {
        401: "Missing or wrong API key.",
        403: "Host or Origin not allowed.",
        408: "The body did not arrive within the body timeout.",
        413: "The upload is over the size limit or the pixel budget.",
        415: "Not multipart, or the file is declared as something other than an image.",
        422: "Not a readable image, a decompression bomb, or a bad form field / file name.",
        503: "Too much work waiting; retry shortly.",
    }.items()
}


def service(request: Request) -> Service:
    return request.app.state.service


@router.get("/health", response_model=Health, summary="Liveness and whether a key is needed")
async def health(svc: Service = Depends(service)) -> dict[str, Any]:
    return {"status": "ok", "version": svc.version, "auth": svc.settings.api_key is not None}


@v1.get("/models", response_model=ModelInfo, summary="The model: labels, input size, accuracy")
async def models(svc: Service = Depends(service)) -> dict[str, Any]:
    return svc.model_info()


@v1.get("/light", response_model=LightConfig, summary="Colours of the ambient light")
async def light(svc: Service = Depends(service)) -> dict[str, Any]:
    mapper = svc.light_template
    return {
        "colors": {k: Light(*rgb).to_dict() for k, rgb in mapper.colors.items()},
        "idle": Light(*mapper.idle).to_dict(),
        "tau": mapper.tau,
    }


@v1.post(
    "/predict",
    response_model=PredictResponse,
    summary="Emotions of the faces in one photo",
    description=f"Upload one image (JPEG, PNG, BMP, WebP, TIFF) in the form field `{FIELD}`. "
    "The answer is the JSON object `ferlab predict --json` prints for an image file.",
    openapi_extra=_UPLOAD_BODY,
    responses=_ERRORS,
)
async def predict(request: Request, svc: Service = Depends(service)) -> dict[str, Any]:
    upload = await read_upload(request, svc.settings.max_upload_bytes, svc.settings.body_timeout)
    return await svc.run(svc.predict, upload.data, upload.filename)


@v1.post(
    "/explain",
    response_model=ExplainResponse,
    summary="Grad-CAM heat map of each face in one photo",
    description=f"Upload one image in the form field `{FIELD}`; each face comes back with the "
    "crop the model saw and its Grad-CAM heat map laid over it, as a PNG data URL. Needs a "
    "ferlab model and `ferlab.explain` (501 otherwise).",
    openapi_extra=_UPLOAD_BODY,
    responses={**_ERRORS, 501: {"model": ErrorBody, "description": "No explainer here."}},
)
async def explain(request: Request, svc: Service = Depends(service)) -> dict[str, Any]:
    upload = await read_upload(request, svc.settings.max_upload_bytes, svc.settings.body_timeout)
    reason = svc.explainer()
    if isinstance(reason, str):
        raise ApiError(501, reason)
    return await svc.run(svc.explain, upload.data, upload.filename)


router.include_router(v1)
