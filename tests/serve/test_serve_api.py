"""The REST API through a real uvicorn server on localhost, with a really trained checkpoint.

Covers the answers (health, model card, predictions on real FER2013 faces, identical to
``ferlab predict --json``) and every refusal: API key, size (declared and streamed), media type,
fake and corrupt images, decompression bombs, path-like file names, malformed forms, saturation
and server bugs, each a JSON error without a traceback.
"""

from __future__ import annotations

import io
import json
import re
import sys
import threading
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from ferlab.engine.checkpoint import read_checkpoint
from ferlab.serve import ServeSettings, create_app
from tests.cli.cli_helpers import run
from tests.recognize.recognize_helpers import box_iou
from tests.serve.serve_helpers import (
    FACE_AT,
    FailingClassifier,
    SlowClassifier,
    jpeg,
    live_server,
    photo,
)

KEY = "test-key-0123"
LIMIT = 512 * 1024
AUTH = {"X-API-Key": KEY}


@pytest.fixture(scope="module")
def server(checkpoint: Path) -> str:
    app = create_app(
        str(checkpoint), device="cpu", settings=ServeSettings(api_key=KEY, max_upload_bytes=LIMIT)
    )
    with live_server(app) as url:
        yield url


@pytest.fixture(scope="module")
def client(server: str) -> httpx.Client:
    with httpx.Client(base_url=server, timeout=60) as c:
        yield c


def upload(
    client: httpx.Client,
    data: bytes,
    name: str = "face.jpg",
    ctype: str = "image/jpeg",
    headers: dict | None = None,
    route: str = "/v1/predict",
) -> httpx.Response:
    return client.post(
        route, files={"file": (name, data, ctype)}, headers=AUTH if headers is None else headers
    )


def assert_error(response: httpx.Response, status: int, code: str, *words: str) -> None:
    """A refusal: the status, a JSON body of exactly error + message, no trace of the code."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "message"} and body["error"] == code
    assert "Traceback" not in response.text and 'File "' not in response.text
    for word in words:
        assert word in body["message"]


# ------------------------------------------------------------------ answers


def test_health_is_open_and_says_a_key_is_needed(client):
    body = client.get("/health").json()
    assert body["status"] == "ok" and body["auth"] is True


def test_models_reports_labels_input_size_and_recorded_accuracy(client, checkpoint):
    body = client.get("/v1/models", headers=AUTH).json()
    meta = read_checkpoint(checkpoint)
    assert body["labels"] == list(meta["classes"])
    assert body["input_size"] == list(meta["input_size"])
    assert body["accuracy"] == {
        "val": meta["metrics"]["val"]["accuracy"],
        "test": meta["metrics"]["test"]["accuracy"],
    }
    assert body["name"] == "best" and body["detector"] == "haar"


def test_predict_finds_the_real_face(client, face):
    response = upload(client, jpeg(photo(face)))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["source"] == "face.jpg" and len(body["faces"]) == 1
    found = body["faces"][0]
    x, y, side = FACE_AT
    assert box_iou(tuple(found["box"]), (x, y, side, side)) > 0.6
    assert found["label"] == max(found["scores"], key=found["scores"].get)
    assert sum(found["scores"].values()) == pytest.approx(1.0, abs=1e-3)


def test_predict_answers_what_ferlab_predict_json_prints(
    client, face, checkpoint, tmp_path, capsys
):
    data = jpeg(photo(face))
    path = tmp_path / "face.jpg"
    path.write_bytes(data)
    code, out, _ = run(["predict", str(path), "--json", "--model", str(checkpoint)], capsys)
    assert code == 0
    printed = json.loads(out)
    served = upload(client, data).json()
    assert served.pop("source") == "face.jpg" and printed.pop("source") == str(path)
    assert served == printed and served["faces"]


def test_predict_two_faces_in_reading_order_and_none(client, fer_faces):
    scene = photo(fer_faces[8])
    scene[40:200, 40:200] = photo(fer_faces[0])[150:310, 300:460]
    body = upload(client, jpeg(scene)).json()
    assert [f["face_id"] for f in body["faces"]] == [0, 1]
    assert body["faces"][0]["box"][0] < body["faces"][1]["box"][0]
    empty = upload(client, jpeg(np.full((240, 320, 3), 128, np.uint8)), "blank.png").json()
    assert empty["faces"] == []


def test_png_and_octet_stream_uploads_are_read(client, face):
    import cv2

    ok, png = cv2.imencode(".png", photo(face))
    response = upload(client, png.tobytes(), "face.png", "application/octet-stream")
    assert response.status_code == 200 and len(response.json()["faces"]) == 1


def test_openapi_docs_served_locally(client):
    docs = client.get("/docs")
    assert docs.status_code == 200 and "/docs-assets/swagger-ui-bundle.js" in docs.text
    assert "cdn" not in docs.text.lower()
    assert client.get("/docs-assets/swagger-ui-bundle.js").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/v1/predict", "/v1/models", "/health"} <= set(paths)


def test_page_served_with_a_same_origin_policy(client):
    page = client.get("/")
    assert page.status_code == 200 and "/static/app.js" in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    # Every asset from this server: no absolute or protocol-relative URL anywhere.
    assert not re.search(r'(src|href)="(https?:)?//', page.text)
    for asset in ("app.js", "style.css"):
        served = client.get(f"/static/{asset}")
        assert served.status_code == 200 and not re.search(r"https?://", served.text)
    assert client.get("/static/favicon.svg").status_code == 200


# ------------------------------------------------------------------ refusals


@pytest.mark.parametrize("headers", [{}, {"X-API-Key": "wrong"}], ids=["missing", "wrong"])
def test_api_key_required(client, headers, face):
    assert_error(upload(client, jpeg(photo(face)), headers=headers), 401, "unauthorized", "key")
    assert_error(client.get("/v1/models", headers=headers), 401, "unauthorized", "X-API-Key")


def test_too_large_by_content_length(client):
    assert_error(upload(client, b"\xff" * (LIMIT + 1)), 413, "too_large", "limit")


def test_too_large_while_streaming_without_content_length(client):
    boundary = "ferlabtest"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.jpg"\r\n'
        "Content-Type: image/jpeg\r\n\r\n"
    ).encode()

    def body():  # chunked transfer: the server only learns the size by counting
        yield head
        for _ in range(LIMIT // 65536 + 2):
            yield b"\xff" * 65536
        yield f"\r\n--{boundary}--\r\n".encode()

    response = client.post(
        "/v1/predict",
        content=body(),
        headers={**AUTH, "Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert "content-length" not in response.request.headers
    assert_error(response, 413, "too_large", "limit")


def test_not_an_image_type_is_415(client):
    assert_error(upload(client, b"hello", "notes.txt", "text/plain"), 415, "unsupported_media_type")
    raw = client.post(
        "/v1/predict", content=b"\xff\xd8", headers={**AUTH, "Content-Type": "image/jpeg"}
    )
    assert_error(raw, 415, "unsupported_media_type", "multipart/form-data")


def test_fake_and_corrupt_images_are_422(client, face):
    assert_error(upload(client, b"<html>not a jpeg</html>"), 422, "invalid_image", "not an image")
    truncated = jpeg(photo(face))[:5000]
    assert_error(upload(client, truncated), 422, "invalid_image", "face.jpg")
    assert_error(upload(client, b""), 422, "invalid_image", "empty")


def test_decompression_bomb_is_refused(client):
    buffer = io.BytesIO()
    # 100 megapixels (above Pillow's 89.5 MP limit) in about 12 kB of PNG.
    Image.new("1", (10_000, 10_000)).save(buffer, "PNG")
    assert buffer.tell() < LIMIT
    response = upload(client, buffer.getvalue(), "bomb.png", "image/png")
    assert_error(response, 413, "too_many_pixels", "10000×10000", "budget of 16 megapixels")


@pytest.mark.parametrize(
    "name", ["../../etc/passwd.jpg", "dir\\face.jpg", "..", "a" * 300 + ".jpg", "face\x1b[2J.jpg"]
)
def test_path_like_file_names_are_refused(client, face, name):
    assert_error(upload(client, jpeg(photo(face)), name=name), 422, "invalid_request", "plain name")


def test_form_must_hold_exactly_one_file_field(client, face):
    data = jpeg(photo(face))
    wrong_field = client.post("/v1/predict", files={"image": ("a.jpg", data)}, headers=AUTH)
    assert_error(wrong_field, 422, "invalid_request", "'file' is missing")
    twice = client.post(
        "/v1/predict", files=[("file", ("a.jpg", data)), ("file", ("b.jpg", data))], headers=AUTH
    )
    assert_error(twice, 422, "invalid_request", "2 times")


def test_unknown_route_and_method_are_json(client):
    assert_error(client.get("/v2/nothing"), 404, "not_found", "/v2/nothing")
    assert_error(client.get("/v1/predict", headers=AUTH), 405, "method_not_allowed")


def test_client_file_names_never_touch_the_filesystem(client, face):
    marker = "ferlab-marker-3f9c1d"
    opened: list[str] = []
    watching = threading.Event()

    watched = ("open", "os.listdir", "os.mkdir", "os.rename", "os.remove")

    def hook(event: str, args: tuple) -> None:
        if watching.is_set() and event in watched and marker in str(args[0] if args else ""):
            opened.append(f"{event} {args[0]}")

    sys.addaudithook(hook)  # audit hooks stay for the process; this one only acts while watching
    watching.set()
    try:
        ok = upload(client, jpeg(photo(face)), f"{marker}.jpg")
        bad = upload(client, b"junk", f"{marker}.png", "image/png")
    finally:
        watching.clear()
    assert ok.status_code == 200 and ok.json()["source"] == f"{marker}.jpg"
    assert bad.status_code == 422 and marker in bad.json()["message"]
    assert opened == []


# ------------------------------------------------------------------ limits and failures


def test_saturated_server_answers_503_at_once(face):
    app = create_app(SlowClassifier(0.4), settings=ServeSettings(max_pending=1))
    data = jpeg(photo(face))
    statuses: list[int] = []
    retry_after: list[str | None] = []

    def call(url: str) -> None:
        r = httpx.post(
            f"{url}/v1/predict", files={"file": ("f.jpg", data, "image/jpeg")}, timeout=60
        )
        statuses.append(r.status_code)
        retry_after.append(r.headers.get("retry-after"))
        if r.status_code == 503:
            assert_error(r, 503, "busy", "retry")

    with live_server(app) as url:
        threads = [threading.Thread(target=call, args=(url,)) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert 200 in statuses and 503 in statuses
    assert all(ra == "1" for s, ra in zip(statuses, retry_after, strict=True) if s == 503)


def test_a_server_bug_is_a_500_without_details(face):
    with live_server(create_app(FailingClassifier())) as url:
        r = httpx.post(
            f"{url}/v1/predict", files={"file": ("f.jpg", jpeg(photo(face)))}, timeout=60
        )
        assert_error(r, 500, "internal_error", "server log")
        assert "secret" not in r.text
        assert httpx.get(f"{url}/health").status_code == 200  # and it goes on serving


def test_explain_answers_heatmaps_or_501(client, face):
    response = upload(client, jpeg(photo(face)), route="/v1/explain")
    try:
        import ferlab.explain  # noqa: F401
    except ImportError:
        assert_error(response, 501, "not_implemented", "ferlab.explain")
        return
    assert response.status_code == 200, response.text
    faces = response.json()["faces"]
    assert len(faces) == 1 and faces[0]["image"].startswith("data:image/png;base64,")
    import base64

    png = base64.b64decode(faces[0]["image"].split(",", 1)[1])
    assert Image.open(io.BytesIO(png)).size == (192, 192)


def test_explain_needs_a_ferlab_model(face):
    with live_server(create_app(SlowClassifier(0.0))) as url:
        r = httpx.post(
            f"{url}/v1/explain", files={"file": ("f.jpg", jpeg(photo(face)))}, timeout=60
        )
        assert_error(r, 501, "not_implemented", "SlowClassifier")


def test_shipped_default_model(face):
    from ferlab.inference import shipped_models

    if "default" not in shipped_models():
        pytest.skip("the shipped default model (ferlab/weights/default.pt) is not installed")
    with live_server(create_app("default", device="cpu")) as url:
        info = httpx.get(f"{url}/v1/models").json()
        assert info["accuracy"] and len(info["labels"]) == 7
        r = httpx.post(
            f"{url}/v1/predict", files={"file": ("f.jpg", jpeg(photo(face)))}, timeout=60
        )
        assert len(r.json()["faces"]) == 1


def test_onnx_runtime_serves_the_same_predictions(client, checkpoint, face):
    pytest.importorskip("onnxruntime", reason="ONNX Runtime is not installed")
    data = jpeg(photo(face))
    torch_faces = upload(client, data).json()["faces"]
    with live_server(create_app(str(checkpoint), runtime="onnx")) as url:
        files = {"file": ("f.jpg", data, "image/jpeg")}
        onnx_faces = httpx.post(f"{url}/v1/predict", files=files, timeout=60).json()["faces"]
        explain = httpx.post(f"{url}/v1/explain", files=files, timeout=60)
    assert [f["box"] for f in onnx_faces] == [f["box"] for f in torch_faces]
    for o, t in zip(onnx_faces, torch_faces, strict=True):
        assert o["scores"] == pytest.approx(t["scores"], abs=1e-3)
    # Explanations take gradients: the ONNX model is explained with its PyTorch checkpoint.
    assert explain.status_code == 200
    assert len(explain.json()["faces"]) == len(torch_faces) == 1
