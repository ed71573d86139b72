"""The frozen face network of Meen et al.'s facial-attention models, taken from its own run.

Meen, Yoshioka & Inoue train "two independent networks [...] on separate datasets": a face /
non-face classifier (``ferlab train face``, :func:`ferlab.models.vgg.face_vgg19`) and the emotion
network, which uses the first one's features as attention. A facial-attention recipe names the
face run's checkpoint in ``model.face_checkpoint``; :func:`load_face_network` puts its weights into
the model's face network and freezes it: no gradients (so neither the optimiser nor weight decay
nor the EMA ever touch it) and eval mode (its batch-norm statistics do not move).

The face network was trained on its own data, normalised with that data's statistics, while the
attention model sees images normalised with the emotion data's. The model therefore re-normalises
its input for the face network (``set_face_input_normalization``); both runs must use the same
crop size and histogram equalisation, and scalar normalisation (``data.normalize`` ``global`` or
``none``), for that mapping to exist.

Self-contained checkpoints: the face network is part of the model, so its weights (and the
re-normalisation) are saved in every checkpoint of the emotion run; the metadata key
``face_network`` records where they came from (path, SHA-256 of the file, the face run's
metrics). A trained emotion model loads without the face checkpoint.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from ferlab.engine.checkpoint import file_sha256, read_checkpoint
from ferlab.engine.recipe import (
    AugmentSection,
    DataSection,
    EvalSection,
    ModelSection,
    OptimSection,
    PaperSection,
    Recipe,
    ScheduleSection,
    TrainSection,
)
from ferlab.errors import DataError, FerlabError
from ferlab.inference.preprocess import Preprocess

__all__ = ["face_recipe", "load_face_network"]


def face_recipe() -> Recipe:
    """The face / non-face network's recipe, ``ferlab train face`` (``--data`` names the data).

    The same run as ``recipes/meen_face_vgg19.yaml``: the paper gives no training details for the
    face network, so it follows the emotion networks' protocol (44×44 random crops and flips, SGD
    with momentum 0.9 and weight decay 5e-4, learning rate 0.01 divided by 10 at 50, 75 and 90 %
    of the epochs). The run is named ``meen_face_vgg19``, so by default it writes
    ``runs/meen_face_vgg19/best.pt``: the ``model.face_checkpoint`` of the ``recipes/meen_*``
    facial-attention recipes.
    """
    return Recipe(
        name="meen_face_vgg19",
        model=ModelSection(name="face_vgg19"),
        data=DataSection(labels="fer2013", crop=44, normalize="global"),
        augment=AugmentSection(flip=True),
        optim=OptimSection(name="sgd", lr=0.01, momentum=0.9, weight_decay=5e-4),
        schedule=ScheduleSection(kind="step", milestones=[0.5, 0.75, 0.9], gamma=0.1),
        train=TrainSection(epochs=60, batch_size=128),
        eval=EvalSection(tta="none"),
        paper=PaperSection(
            source="Meen et al. (paper 000), face classification network",
            notes="ferlab's face-nonface set stands in for the paper's face data set, which is "
            "not public; the emotion networks' training protocol is used.",
        ),
    )


def _check_preprocess(face: Preprocess, emotion: Preprocess, path: Path) -> None:
    if face.crop != emotion.crop:
        raise DataError(
            f"the face network was trained on {face.crop}×{face.crop} input but this recipe "
            f"feeds {emotion.crop}×{emotion.crop} (data.crop must match)",
            path=path,
        )
    if face.hist_eq != emotion.hist_eq:
        raise DataError(
            f"the face network was trained with data.hist_eq {str(face.hist_eq).lower()}, "
            f"this recipe has {str(emotion.hist_eq).lower()} (they must match)",
            path=path,
        )
    for name, pre in (("face network's", face), ("this recipe's", emotion)):
        if np.size(pre.mean) != 1 or np.size(pre.std) != 1:
            raise DataError(
                f"the {name} data.normalize is per_pixel; facial attention needs global or none "
                "for both runs",
                path=path,
            )


def load_face_network(model: nn.Module, path: str | Path, preprocess: Preprocess) -> dict[str, Any]:
    """Load a face / non-face run's checkpoint into ``model.face_net`` and freeze it.

    Args:
        model: a facial-attention model (it has a ``face_net``).
        path: the face run's ``best.pt``.
        preprocess: how the emotion run prepares its images (to map them onto the face
            network's normalisation).

    Returns:
        The provenance stored as ``face_network`` in the emotion run's checkpoints: ``path``,
        ``sha256``, ``model`` (name and kwargs), ``classes`` and ``metrics`` of the face run.
    """
    path = Path(path)
    face = getattr(model, "face_net", None)
    if face is None:
        raise FerlabError(
            f"model.face_checkpoint is set but model {type(model).__name__} has no face network"
        )
    ckpt = read_checkpoint(path)
    trained_width = float(ckpt["model"]["kwargs"].get("width", 1.0))
    if trained_width != face.width:
        raise DataError(
            f"the face network was trained with width {trained_width:g} but this model's face "
            f"network has width {face.width:g}; set model.kwargs.width to {trained_width:g} or "
            "train a face network of the model's width",
            path=path,
        )
    try:
        face.load_state_dict(ckpt["state_dict"])
    except RuntimeError as exc:
        raise DataError(
            f"weights do not fit the face network: {str(exc).splitlines()[0][:200]}", path=path
        ) from None
    face_pre = Preprocess.from_dict(ckpt["preprocess"])
    _check_preprocess(face_pre, preprocess, path)
    model.set_face_input_normalization(
        float(preprocess.mean), float(preprocess.std), float(face_pre.mean), float(face_pre.std)
    )
    face.requires_grad_(False)
    face.eval()
    return {
        "path": str(path.resolve()),
        "sha256": file_sha256(path),
        "model": ckpt["model"],
        "classes": list(ckpt["classes"]),
        "metrics": ckpt.get("metrics", {}),
    }
