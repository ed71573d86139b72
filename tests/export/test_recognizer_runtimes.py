"""The recognizer gives the same labels with the PyTorch and the ONNX Runtime backends, and the
ONNX backend runs where ``import torch`` fails."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ferlab.export import export_onnx
from ferlab.recognize import Recognizer

pytestmark = [pytest.mark.dataset, pytest.mark.slow]  # the checkpoint trains on real faces

#: Run first in the subprocess: every ``import torch`` now raises ImportError, as where PyTorch is
#: not installed.
_NO_TORCH = "import sys; sys.modules['torch'] = None\n"

_RECOGNIZE = """
import json, sys
import numpy as np
import ferlab
from ferlab.recognize import Recognizer

model = ferlab.load_model(sys.argv[1])
results = Recognizer(model=sys.argv[1])(np.load(sys.argv[2]))
print(json.dumps({
    "runtime": model.runtime,
    "faces": [{"box": f.box, "label": f.label, "scores": f.scores} for f in results],
    "torch_loaded": any(m.startswith("torch") and sys.modules[m] is not None for m in sys.modules),
}))
"""


def _faces(results) -> list[dict]:
    return [{"box": list(f.box), "label": f.label, "scores": f.scores} for f in results]


def _same(got: list[dict], want: list[dict]) -> None:
    assert [f["box"] for f in got] == [f["box"] for f in want]
    assert [f["label"] for f in got] == [f["label"] for f in want]
    for g, w in zip(got, want, strict=True):
        assert max(abs(g["scores"][k] - w["scores"][k]) for k in w["scores"]) < 1e-4


def _without_torch(code: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", _NO_TORCH + code, *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
    )


@pytest.fixture(scope="module")
def torch_faces(real_checkpoint, scene) -> list[dict]:
    faces = _faces(Recognizer(model=str(real_checkpoint), device="cpu", runtime="torch")(scene))
    assert len(faces) == 3
    return faces


def test_same_labels_with_either_runtime(real_checkpoint, scene, torch_faces, tmp_path):
    _same(_faces(Recognizer(model=str(real_checkpoint), runtime="onnx")(scene)), torch_faces)
    export_onnx(real_checkpoint, tmp_path / "model.onnx")
    _same(_faces(Recognizer(model=str(tmp_path / "model.onnx"))(scene)), torch_faces)


def test_onnx_backend_runs_without_torch(real_checkpoint, scene, torch_faces, tmp_path):
    export_onnx(real_checkpoint, tmp_path / "model.onnx", dynamic_batch=True)
    np.save(tmp_path / "scene.npy", scene)
    done = _without_torch(_RECOGNIZE, "model.onnx", "scene.npy", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["runtime"] == "onnx" and not result["torch_loaded"]
    _same(result["faces"], torch_faces)


def test_without_torch_a_checkpoint_falls_back_to_its_onnx_twin(
    real_checkpoint, scene, torch_faces, tmp_path
):
    shutil.copy(real_checkpoint, tmp_path / "model.pt")
    np.save(tmp_path / "scene.npy", scene)
    done = _without_torch(_RECOGNIZE, "model.pt", "scene.npy", cwd=tmp_path)
    assert done.returncode == 1
    assert "needs PyTorch" in done.stderr and "ferlab[train]" in done.stderr
    assert "ferlab export model.pt" in done.stderr
    export_onnx(tmp_path / "model.pt", tmp_path / "model.onnx")
    done = _without_torch(_RECOGNIZE, "model.pt", "scene.npy", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["runtime"] == "onnx"
    _same(result["faces"], torch_faces)


def test_predict_command_runs_without_torch(real_checkpoint, scene, torch_faces, tmp_path):
    import cv2

    export_onnx(real_checkpoint, tmp_path / "model.onnx")
    cv2.imwrite(str(tmp_path / "scene.png"), scene)
    code = "from ferlab.cli.app import main; main(sys.argv[1:])"
    args = ["predict", "scene.png", "-m", "model.onnx", "--json"]
    done = _without_torch(code, *args, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    _same(json.loads(done.stdout)["faces"], torch_faces)
