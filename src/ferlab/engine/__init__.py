"""Training and evaluation engine.

``train(recipe)`` runs a recipe (:mod:`ferlab.engine.recipe`) and writes a run folder;
``load_checkpoint(path)`` rebuilds a trained model for use; ``evaluate_checkpoint`` scores one on
a split. See ``docs/training.md``.
"""

from ferlab.engine.augment import BatchAugment
from ferlab.engine.checkpoint import load_checkpoint, read_checkpoint
from ferlab.engine.evaluate import (
    confusion_matrix,
    evaluate_checkpoint,
    metrics_from_confusion,
    predict_proba,
)
from ferlab.engine.recipe import (
    Recipe,
    apply_overrides,
    default_recipe,
    load_recipe,
    parse_duration,
    recipe_from_dict,
)
from ferlab.engine.trainer import StepInfo, TrainResult, resume_recipe, train

__all__ = [
    "BatchAugment",
    "Recipe",
    "StepInfo",
    "TrainResult",
    "apply_overrides",
    "confusion_matrix",
    "default_recipe",
    "evaluate_checkpoint",
    "load_checkpoint",
    "load_recipe",
    "metrics_from_confusion",
    "parse_duration",
    "predict_proba",
    "read_checkpoint",
    "recipe_from_dict",
    "resume_recipe",
    "train",
]
