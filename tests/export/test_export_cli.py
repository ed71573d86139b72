"""``ferlab export`` through the real entry point: reports, and one-line errors."""

from __future__ import annotations

import json

import cv2
import pytest

import ferlab
from tests.cli.cli_helpers import run
from tests.recognize.recognize_helpers import background


def test_export_json_report_and_untrained_warning(tmp_path, capsys):
    out = tmp_path / "de.onnx"
    code, stdout, stderr = run(
        ["export", "deep_emotion_nostn", "--out", str(out), "--dynamic-batch", "--json"], capsys
    )
    assert code == 0, stderr
    report = json.loads(stdout)
    assert report["out"] == str(out) and report["dynamic_batch"] and report["opset"] == 17
    assert report["weights"] == "untrained" and "untrained weights" in stderr
    assert report["check"]["max_abs_diff"] < 1e-4 and report["check"]["of"] == "random pixels"
    model = ferlab.load_model(out)
    assert model.labels == tuple(report["labels"]) and model.meta["weights"] == "untrained"


def test_export_table_and_dynamic_int8(tmp_path, capsys):
    out = tmp_path / "de-int8.onnx"
    code, stdout, stderr = run(
        ["export", "deep_emotion", "-o", str(out), "--int8", "--int8-mode", "dynamic"], capsys
    )
    assert code == 0, stderr
    assert f"wrote {out}" in stdout and "int8-dynamic, opset 20" in stdout
    assert (
        "checked against PyTorch on 16 images of seeded random pixels (noise, not faces)" in stdout
    )
    assert ferlab.load_model(out).meta["quantization"] == "int8-dynamic"


@pytest.mark.parametrize(
    "args, message",
    [
        (["nosuch", "-o", "{tmp}/x.onnx"], "unknown model 'nosuch'; known models: "),
        (["missing.pt", "-o", "{tmp}/x.onnx"], "missing.pt: checkpoint not found"),
        (["vgg19", "-o", "{tmp}/no/such/x.onnx"], "output folder does not exist"),
        (["vgg19", "-o", "{tmp}/file.txt/x.onnx"], "file.txt: is not a folder"),
        (["vgg19", "-o", "{tmp}/dir.onnx"], "dir.onnx: is a folder"),
        (["vgg19", "-o", "{tmp}/x.pt"], "the output must end in .onnx"),
        (["vgg19", "-o", "{tmp}/x.onnx", "--format", "tflite"], "unknown export format"),
        (["vgg19", "-o", "{tmp}/x.onnx", "--int8"], "--calibration fer2013.csv.gz"),
        (["vgg19", "-o", "{tmp}/x.onnx", "--tta", "rotate"], "unknown test-time augmentation"),
    ],
)
def test_export_errors_are_one_line(tmp_path, capsys, args, message):
    (tmp_path / "file.txt").write_text("not a folder")
    (tmp_path / "dir.onnx").mkdir()
    code, stdout, stderr = run(["export", *(a.format(tmp=tmp_path) for a in args)], capsys)
    assert code == 2 and stdout == ""
    assert stderr.startswith("error: ") and message in stderr and "Traceback" not in stderr
    assert not (tmp_path / "x.onnx").exists()


def test_predict_runtime_option(tmp_path, capsys):
    run(["export", "shallow_cnn", "-o", str(tmp_path / "m.onnx")], capsys)
    cv2.imwrite(str(tmp_path / "empty.png"), background())
    image = str(tmp_path / "empty.png")
    code, stdout, _ = run(["predict", image, "-m", str(tmp_path / "m.onnx"), "--json"], capsys)
    assert code == 0 and json.loads(stdout)["faces"] == []
    code, _, stderr = run(
        ["predict", image, "-m", str(tmp_path / "m.onnx"), "--runtime", "torch"], capsys
    )
    assert code == 2 and "is an ONNX export" in stderr
    code, _, stderr = run(["predict", image, "--runtime", "tvm"], capsys)
    assert code == 2 and "unknown runtime 'tvm'" in stderr
