"""``export_onnx`` and ``load_model`` with ONNX: metadata round trip, runtimes, clear errors."""

from __future__ import annotations

import shutil

import numpy as np
import onnx
import pytest

import ferlab
from ferlab import __version__
from ferlab.engine.checkpoint import load_checkpoint
from ferlab.errors import DataError, FerlabError, UnknownNameError
from ferlab.export import export_onnx
from ferlab.inference.metadata import FORMAT_VERSION, decode
from ferlab.inference.onnx_backend import load_onnx

pytestmark = [pytest.mark.dataset, pytest.mark.slow]  # the checkpoint trains on real faces


@pytest.fixture(scope="module")
def exported(real_checkpoint, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "model.onnx"
    report = export_onnx(real_checkpoint, out, dynamic_batch=True)
    return out, report


def test_metadata_round_trip(real_checkpoint, exported):
    out, report = exported
    _, meta = load_checkpoint(real_checkpoint)
    fields = decode({p.key: p.value for p in onnx.load(out).metadata_props})
    pre = meta["preprocess"]
    assert fields["labels"] == list(meta["classes"])
    assert fields["input_size"] == list(meta["input_size"])
    assert fields["preprocess"] == {
        "image_size": pre.image_size,
        "crop": pre.crop,
        "hist_eq": True,
        "mean": float(pre.mean),
        "std": float(pre.std),
    }
    assert fields["tta"] == "ten_crop"  # as released
    assert fields["model"] == "deep_emotion_nostn"
    assert fields["model_kwargs"] == meta["model"]["kwargs"]
    assert fields["metrics"] == meta["metrics"]
    assert fields["label_mode"] == "fer2013" and fields["weights"] == "trained"
    assert fields["source"] == real_checkpoint.name and fields["quantization"] == "none"
    assert fields["ferlab_version"] == __version__
    assert report["bytes"] == out.stat().st_size and report["opset"] == 17
    assert report["check"]["max_abs_diff"] < 1e-4


def test_onnx_file_predicts_like_the_checkpoint(real_checkpoint, exported, fer2013_data):
    faces = fer2013_data.subset("val").images[:64].numpy()
    onnx_model = ferlab.load_model(exported[0])
    torch_model = ferlab.load_model(real_checkpoint, device="cpu")
    assert isinstance(onnx_model, ferlab.EmotionModel)
    assert onnx_model.labels == torch_model.labels and onnx_model.tta == "ten_crop"
    assert onnx_model.input_size == torch_model.input_size
    assert onnx_model.meta["runtime"] == "onnx" and onnx_model.name == "model"
    want = torch_model.predict_proba(faces)
    assert np.abs(onnx_model.predict_proba(faces) - want).max() < 1e-4
    assert onnx_model.predict(faces) == torch_model.predict(faces)
    # Other sizes, a single face and colour crops go through the same validation.
    assert onnx_model.predict_proba(np.zeros((2, 96, 80, 3), np.uint8)).shape == (2, 7)
    assert onnx_model.predict_proba(faces[0]).shape == (1, 7)
    assert onnx_model.predict_proba(np.zeros((0, 48, 48), np.uint8)).shape == (0, 7)
    with pytest.raises(DataError, match="0-255"):
        onnx_model.predict_proba(np.full((1, 48, 48), 300.0))


def test_runtime_choice(real_checkpoint, exported, tmp_path):
    in_memory = ferlab.load_model(real_checkpoint, runtime="onnx")
    assert in_memory.meta["runtime"] == "onnx" and in_memory.meta["path"] == str(real_checkpoint)
    assert in_memory.tta == "ten_crop"
    # An export beside a checkpoint, with the same name, is what runtime="onnx" loads.
    shutil.copy(real_checkpoint, tmp_path / "m.pt")
    export_onnx(tmp_path / "m.pt", tmp_path / "m.onnx", tta="flip")
    twin = ferlab.load_model(tmp_path / "m.pt", runtime="onnx")
    assert twin.tta == "flip" and twin.meta["path"] == str(tmp_path / "m.onnx")
    assert ferlab.load_model(tmp_path / "m.pt", runtime="torch").tta == "ten_crop"
    with pytest.raises(DataError, match="ONNX export"):
        ferlab.load_model(exported[0], runtime="torch")
    with pytest.raises(UnknownNameError, match="runtime"):
        ferlab.load_model(real_checkpoint, runtime="tensorrt")
    with pytest.raises(UnknownNameError, match="device"):
        ferlab.load_model(exported[0], device="tpu")


def test_foreign_and_broken_files_are_clear_errors(exported, tmp_path):
    model = onnx.load(exported[0])
    del model.metadata_props[:]
    onnx.save(model, tmp_path / "plain.onnx")
    with pytest.raises(DataError, match="plain.onnx: not a ferlab ONNX export"):
        load_onnx(tmp_path / "plain.onnx")
    newer = onnx.load(exported[0])
    for prop in newer.metadata_props:
        if prop.key == "ferlab_format_version":
            prop.value = str(FORMAT_VERSION + 1)
    onnx.save(newer, tmp_path / "newer.onnx")
    with pytest.raises(DataError, match="newer than this ferlab supports"):
        ferlab.load_model(tmp_path / "newer.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(DataError, match="junk.onnx: not a loadable ONNX model"):
        ferlab.load_model(tmp_path / "junk.onnx")
    with pytest.raises(DataError, match=r"missing\.onnx: ONNX export not found"):
        ferlab.load_model(tmp_path / "missing.onnx")
    with pytest.raises(UnknownNameError, match=r"\.onnx export"):
        ferlab.load_model("nosuchname")


def test_export_refuses_bad_requests(real_checkpoint, tmp_path):
    with pytest.raises(DataError, match="must end in .onnx"):
        export_onnx(real_checkpoint, tmp_path / "model.pt")
    (tmp_path / "y.onnx").write_bytes(b"")
    with pytest.raises(DataError, match="already an ONNX export"):
        export_onnx(tmp_path / "y.onnx", tmp_path / "z.onnx")
    with pytest.raises(FerlabError, match="calibration"):
        export_onnx(real_checkpoint, tmp_path / "q.onnx", int8="static")
    with pytest.raises(UnknownNameError, match="quantisation"):
        export_onnx(real_checkpoint, tmp_path / "q.onnx", int8="int4")
    with pytest.raises(UnknownNameError, match="test-time augmentation"):
        export_onnx(real_checkpoint, tmp_path / "q.onnx", tta="rotate")
    assert [p.name for p in tmp_path.iterdir()] == ["y.onnx"]  # nothing written
