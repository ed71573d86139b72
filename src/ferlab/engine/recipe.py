"""Training recipes: the typed schema of a run and its YAML form.

A recipe is a plain YAML mapping with one section per concern::

    model:    {name: medium_cnn, kwargs: {}, face_checkpoint: null, init_from: null}
    data:     {path: ../shared/datasets/fer2013/fer2013.csv.gz, labels: fer2013, crop: null,
               hist_eq: false, normalize: per_pixel, val_fraction: 0.1}
    augment:  {flip: true, shift: 0.1}
    distill:  {teacher: default, weight: 0.7, temperature: 2.0}
    optim:    {name: adam, lr: 0.01}
    schedule: {kind: plateau, factor: 0.5, patience: 25}
    train:    {epochs: 100, batch_size: 64, early_stopping: null}
    eval:     {tta: none}
    paper:    {source: "Jahromi & Fyshe", reported_accuracy: 63.13, notes: "..."}

Every section is a dataclass below, so the schema is documented in one place (``docs/training.md``
renders the same fields) and every value is checked when the file is read: an unknown key or a
value of the wrong type raises :class:`~ferlab.errors.FerlabError` naming the file and the key,
with a suggestion for misspelt keys. Omitted keys take the defaults below.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ferlab.errors import DataError, FerlabError
from ferlab.inference.device import DEVICES
from ferlab.inference.preprocess import TTA_CHOICES
from ferlab.inference.shipped import SHIPPED

__all__ = [
    "AugmentSection",
    "DataSection",
    "DistillSection",
    "EvalSection",
    "ModelSection",
    "OptimSection",
    "PaperSection",
    "Recipe",
    "ScheduleSection",
    "ShiftAugmentSection",
    "TrainSection",
    "apply_overrides",
    "default_recipe",
    "load_recipe",
    "parse_duration",
    "recipe_from_dict",
    "save_recipe",
]


@dataclass
class ModelSection:
    """Which network to train."""

    name: str = ""
    """Registry name (``ferlab models`` lists them)."""
    kwargs: dict[str, Any] = field(default_factory=dict)
    """Extra constructor arguments; ``num_classes``, ``in_chans`` and ``input_size`` are set by
    the engine from the data."""
    face_checkpoint: str | None = None
    """Facial-attention models only: a trained face/non-face checkpoint loaded into the model's
    frozen face network."""
    init_from: str | None = None
    """Start from another run's weights (fine-tuning): a checkpoint path or a shipped model name
    (``default``). Tensors whose shapes differ, such as the classifier of another label set,
    start fresh; the source's normalisation and crop are kept."""


@dataclass
class DataSection:
    """Where the data comes from and how every image is prepared (train and test alike)."""

    path: str | None = None
    """Dataset path (CSV, image folder, zip); ``--data`` overrides it. Relative paths are
    resolved against the recipe file's folder."""
    ferplus: str | None = None
    """FER+ ``fer2013new.csv`` to relabel FER2013 with."""
    labels: str = "fer2013"
    """Label mode passed to the reader (``fer2013`` or ``ferplus-<mode>``)."""
    cache_dir: str | None = None
    skip_bad: bool = False
    val_fraction: float = 0.1
    """Share of the training images held out for validation when the source has no val split."""
    crop: int | None = None
    """Side of the square crops the network sees (random in training, centre at test time);
    ``null`` feeds the whole 48×48 image."""
    hist_eq: bool = False
    """Histogram-equalise every image (computed once over the dataset)."""
    normalize: str = "global"
    """``global`` (one mean/std), ``per_pixel`` (a mean/std image) or ``none`` (only /255); the
    statistics come from the training split."""
    ferplus_weight: float = 0.4
    """``labels: fer2013-ferplus`` only: share of each soft target taken from the FER+ votes
    (the rest is FER2013's label)."""
    max_train: int | None = None
    """Train on a seeded random subset of this many training images (quick experiments)."""
    max_eval: int | None = None
    """Validate and test on seeded random subsets of this many images."""


@dataclass
class AugmentSection:
    """Training-time augmentation, applied to whole batches as tensor operations."""

    flip: bool = False
    """Random horizontal flip (p = 0.5)."""
    pad: int = 0
    """Pad by this many pixels before the random crop (pad-and-crop)."""
    shift: float = 0.0
    """Random translation up to this fraction of width and height."""
    rotate: float = 0.0
    """Random rotation up to ± this many degrees."""
    scale: float = 0.0
    """Random zoom by a factor in [1 - scale, 1 + scale]."""
    shear: float = 0.0
    """Random shear up to ± this many degrees."""
    elastic: float = 0.0
    """Smooth random distortion of up to this many pixels (0 = off)."""
    erase: float = 0.0
    """Probability of random erasing of one rectangle per image."""
    mixup: float = 0.0
    """Mixup Beta(α, α) parameter (0 = off)."""
    cutmix: float = 0.0
    """CutMix Beta(α, α) parameter (0 = off); with mixup too, each batch picks one."""
    fill: str = "zeros"
    """How pixels shifted in from outside are filled: ``zeros`` (the dataset mean after
    normalisation), ``border`` (nearest edge pixel, like Keras) or ``reflection``."""


@dataclass
class ShiftAugmentSection:
    """Train-time shifts of real inputs on the uint8 faces (:mod:`ferlab.engine.shift_augment`);
    each value is the probability that an image gets that shift (0 = off)."""

    occlude: float = 0.0
    """A hand over mouth and chin, or dark glasses."""
    light: float = 0.0
    """Dimmed brightness, low contrast or a gamma curve."""
    blur: float = 0.0
    """Gaussian blur, σ 0.3-2 pixels."""
    noise: float = 0.0
    """Gaussian sensor noise, σ 2-20 grey levels."""
    jpeg: float = 0.0
    """JPEG compression at quality 10-60."""


@dataclass
class DistillSection:
    """Knowledge distillation from a trained teacher (:mod:`ferlab.engine.distill`): its
    probabilities on every training image, computed once and cached, become soft targets."""

    teacher: str | None = None
    """A shipped model name (``default``) or a checkpoint path; ``null``: no distillation."""
    weight: float = 0.7
    """Share of each target taken from the teacher (the rest is the image's label)."""
    temperature: float = 2.0
    """The teacher's probabilities are softened as ``softmax(log p / temperature)``."""
    tta: str | None = None
    """The teacher's test-time augmentation; ``null`` uses the one it ships with."""


@dataclass
class OptimSection:
    name: str = "adamw"
    """``sgd``, ``adam`` or ``adamw``."""
    lr: float = 1e-3
    momentum: float = 0.9
    """SGD momentum."""
    nesterov: bool = False
    weight_decay: float = 0.0
    """L2 penalty for sgd/adam, decoupled weight decay for adamw."""
    weight_decay_on: list[str] | None = None
    """Parameter-name prefixes (e.g. ``[head.]``) that weight decay applies to; ``null``: all."""
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    grad_clip: float | None = None
    """Clip the global gradient norm to this value."""


@dataclass
class ScheduleSection:
    kind: str = "cosine"
    """``constant``, ``step`` (× gamma at fractions of training), ``plateau`` (× factor when
    validation accuracy has not improved for ``patience`` epochs; factor 0.5 is "halve"),
    ``cosine`` or ``onecycle``."""
    milestones: list[float] = field(default_factory=lambda: [0.5, 0.75, 0.9])
    """``step``: fractions of the total steps at which the rate is multiplied by ``gamma``."""
    gamma: float = 0.1
    factor: float = 0.5
    """``plateau``: multiplier applied on a plateau."""
    patience: int = 10
    """``plateau``: epochs without improvement before reducing."""
    min_lr: float = 0.0
    warmup_epochs: float = 0.0
    """Linear warm-up from 0 over this many epochs (any kind but onecycle)."""
    pct_start: float = 0.3
    """``onecycle``: share of training spent raising the rate."""
    div_factor: float = 25.0
    """``onecycle``: the start rate is lr / div_factor."""
    final_div_factor: float = 1e4
    """``onecycle``: the final rate is lr / div_factor / final_div_factor."""


@dataclass
class TrainSection:
    epochs: int = 30
    batch_size: int = 64
    """Global batch size (split across processes under DDP)."""
    eval_batch_size: int = 512
    early_stopping: int | None = None
    """Stop after this many epochs without a better validation accuracy."""
    min_epochs: int | None = None
    """Early stopping cannot end the run before this many epochs (a paper's "at least N")."""
    time_budget: str | None = None
    """Training budget such as ``90s``, ``30m``, ``2h``, ``1h30m``, on :attr:`budget_clock`."""
    budget_clock: str = "wall"
    """``wall`` (wall-clock seconds) or ``cpu`` (the process's CPU seconds, all threads: equal
    compute for runs that share a busy machine; 20m of CPU is 10 wall minutes on 2 idle cores)."""
    seed: int = 0
    label_smoothing: float = 0.0
    balanced_sampling: bool = False
    """Weighted random sampling so that every class is drawn equally often."""
    class_balance: float = 0.0
    """Class-balanced loss: class k's loss terms are weighted by ``count_k ** -class_balance``
    (training counts, normalised to a mean weight of 1 per training image); 0 = off, 1 = fully
    inverse-frequency."""
    ema: float | None = None
    """Exponential moving average of the weights with this decay; selection and the final
    evaluation then use the averaged copy."""
    device: str = "auto"
    """``auto`` (CUDA when present), ``cpu`` or ``cuda``."""
    precision: str = "auto"
    """``auto`` (AMP bf16/fp16 on CUDA, fp32 on CPU), ``fp32``, ``bf16`` or ``fp16``."""
    channels_last: bool = True
    """Channels-last (NHWC) memory format for the model and its inputs: up to 1.4× faster on
    the AVX2 CPU and never measurably slower (docs/training.md), and the fast layout on CUDA."""
    compile: bool = False
    """Run the model through ``torch.compile``."""
    num_threads: int | None = None
    """CPU threads; ``null`` uses every core (divided among DDP processes)."""
    checkpoint_every_minutes: float | None = None
    """Also write ``last.pt`` mid-epoch every this many minutes."""
    checkpoint_every_steps: int | None = None
    """Also write ``last.pt`` mid-epoch every this many steps."""
    deterministic: bool = False
    """CUDA: deterministic kernels, no cuDNN autotuning (bit-identical reruns, slower). CPU runs
    are bit-identical at a fixed thread count without it."""


@dataclass
class EvalSection:
    tta: str = "none"
    """Test-time augmentation of the final evaluation: ``none``, ``flip`` or ``ten_crop``."""
    plots: bool = True
    """Draw curves, confusion matrices and misclassified examples into the run folder."""


@dataclass
class PaperSection:
    """Where a recipe comes from and what the report claims (shown by ``ferlab compare``)."""

    source: str = ""
    reported_accuracy: float | None = None
    """Test accuracy in percent as reported."""
    reported_on: str = ""
    """Which split / labels the number is on."""
    notes: str = ""
    """Protocol details and deviations."""


@dataclass
class Recipe:
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    augment: AugmentSection = field(default_factory=AugmentSection)
    shift_augment: ShiftAugmentSection = field(default_factory=ShiftAugmentSection)
    distill: DistillSection = field(default_factory=DistillSection)
    optim: OptimSection = field(default_factory=OptimSection)
    schedule: ScheduleSection = field(default_factory=ScheduleSection)
    train: TrainSection = field(default_factory=TrainSection)
    eval: EvalSection = field(default_factory=EvalSection)
    paper: PaperSection = field(default_factory=PaperSection)
    name: str = ""
    """Run name; defaults to the recipe file's stem or the model name."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_CHOICES: dict[str, tuple[str, ...]] = {
    "data.normalize": ("global", "per_pixel", "none"),
    "augment.fill": ("zeros", "border", "reflection"),
    "optim.name": ("sgd", "adam", "adamw"),
    "schedule.kind": ("constant", "step", "plateau", "cosine", "onecycle"),
    "train.device": DEVICES,
    "train.precision": ("auto", "fp32", "bf16", "fp16"),
    "train.budget_clock": ("wall", "cpu"),
    "eval.tta": TTA_CHOICES,
    "distill.tta": TTA_CHOICES,
}
_POSITIVE = {
    "train.epochs",
    "train.min_epochs",
    "train.batch_size",
    "train.eval_batch_size",
    "optim.lr",
}


# Names other tools use for some keys, so that a suggestion can point at ours.
_SYNONYMS = {
    "learning_rate": "lr",
    "wd": "weight_decay",
    "l2": "weight_decay",
    "batch": "batch_size",
    "num_epochs": "epochs",
    "n_epochs": "epochs",
    "optimizer": "name",
    "patience_epochs": "patience",
    "label_mode": "labels",
}


def _suggest(name: str, known: list[str]) -> str:
    candidates = known + [k for k, v in _SYNONYMS.items() if v in known]
    close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    if not close:
        return f"; known keys: {', '.join(known)}"
    return f"; did you mean '{_SYNONYMS.get(close[0], close[0])}'?"


def _coerce(value: Any, hint: Any, key: str, where: str) -> Any:
    """Check ``value`` against the type ``hint``; ints are accepted where floats are expected."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key, where)
            except FerlabError as exc:
                errors.append(exc)
        raise errors[0]
    if hint is Any:
        return value
    if origin is list:
        (item,) = typing.get_args(hint)
        if not isinstance(value, list | tuple):
            raise DataError(f"'{key}' must be a list, not {value!r}", path=where)
        return [_coerce(v, item, key, where) for v in value]
    if origin is dict:
        if not isinstance(value, dict):
            raise DataError(f"'{key}' must be a mapping, not {value!r}", path=where)
        return dict(value)
    if hint is bool:
        if not isinstance(value, bool):
            raise DataError(f"'{key}' must be true or false, not {value!r}", path=where)
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise DataError(f"'{key}' must be an integer, not {value!r}", path=where)
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            # YAML 1.1 reads "1e-4" (no dot) as a string; accept it as a number.
            if isinstance(value, str):
                try:
                    return float(value)
                except ValueError:
                    pass
            raise DataError(f"'{key}' must be a number, not {value!r}", path=where)
        return float(value)
    if hint is str:
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise DataError(f"'{key}' must be a string, not {value!r}", path=where)
        return str(value)
    raise TypeError(f"unsupported recipe field type {hint!r}")  # a schema bug, not user input


def _build(cls: type, raw: Any, prefix: str, where: str) -> Any:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise DataError(f"section '{prefix}' must be a mapping, not {raw!r}", path=where)
    hints = typing.get_type_hints(cls)
    known = [f.name for f in dataclasses.fields(cls)]
    values: dict[str, Any] = {}
    for key, value in raw.items():
        full = f"{prefix}.{key}" if prefix else str(key)
        if key not in known:
            raise DataError(f"unknown key '{full}'{_suggest(str(key), known)}", path=where)
        hint = hints[key]
        if dataclasses.is_dataclass(hint):
            values[key] = _build(hint, value, full, where)
            continue
        value = _coerce(value, hint, full, where)
        if full in _CHOICES and value is not None and value not in _CHOICES[full]:
            raise DataError(
                f"'{full}' must be one of {', '.join(_CHOICES[full])}, not {value!r}", path=where
            )
        if full in _POSITIVE and value is not None and value <= 0:
            raise DataError(f"'{full}' must be positive, not {value!r}", path=where)
        values[key] = value
    return cls(**values)


def recipe_from_dict(raw: dict[str, Any], *, where: str = "<recipe>") -> Recipe:
    """Validate a recipe mapping (as read from YAML) into a :class:`Recipe`."""
    recipe = _build(Recipe, raw, "", where)
    if recipe.train.time_budget is not None:
        parse_duration(recipe.train.time_budget, where=where)
    if (recipe.train.min_epochs or 0) > recipe.train.epochs:
        raise DataError(
            f"'train.min_epochs' ({recipe.train.min_epochs}) is more than 'train.epochs' "
            f"({recipe.train.epochs}): lower it or train longer",
            path=where,
        )
    if not 0 <= recipe.distill.weight <= 1:
        raise DataError(
            f"'distill.weight' must be between 0 and 1, not {recipe.distill.weight!r}", path=where
        )
    if recipe.distill.temperature <= 0:
        raise DataError(
            f"'distill.temperature' must be positive, not {recipe.distill.temperature!r}",
            path=where,
        )
    return recipe


def load_recipe(path: str | Path) -> Recipe:
    """Read and validate a YAML recipe; ``data.path`` is resolved relative to the file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError("recipe file not found", path=path) from None
    except OSError as exc:
        raise DataError(f"cannot read recipe: {exc.strerror}", path=path) from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        row = None if mark is None else mark.line + 1
        problem = getattr(exc, "problem", None) or str(exc)
        raise DataError(f"not valid YAML: {problem}", path=path, row=row) from None
    if not isinstance(raw, dict):
        raise DataError("a recipe must be a YAML mapping of sections", path=path)
    recipe = recipe_from_dict(raw, where=str(path))
    if not recipe.name:
        recipe.name = path.stem
    if recipe.data.path and not Path(recipe.data.path).is_absolute():
        recipe.data.path = str((path.parent / recipe.data.path).resolve())
    if recipe.data.ferplus and not Path(recipe.data.ferplus).is_absolute():
        recipe.data.ferplus = str((path.parent / recipe.data.ferplus).resolve())
    if recipe.model.face_checkpoint and not Path(recipe.model.face_checkpoint).is_absolute():
        recipe.model.face_checkpoint = str((path.parent / recipe.model.face_checkpoint).resolve())
    for section, key in ((recipe.model, "init_from"), (recipe.distill, "teacher")):
        spec = getattr(section, key)
        if spec and spec not in SHIPPED and not Path(spec).is_absolute():
            setattr(section, key, str((path.parent / spec).resolve()))
    if not recipe.model.name:
        raise DataError("the recipe names no model (model.name)", path=path)
    return recipe


def save_recipe(recipe: Recipe, path: str | Path) -> None:
    """Write the resolved recipe as YAML (sections in schema order)."""
    Path(path).write_text(yaml.safe_dump(recipe.to_dict(), sort_keys=False), encoding="utf-8")


def default_recipe(model_name: str) -> Recipe:
    """A reasonable recipe for any registered model, used by ``ferlab train MODEL``.

    AdamW with cosine decay and a short warm-up, flips, 10 % shifts and ±10° rotations: a
    configuration that trains every network of the zoo stably without tuning.
    """
    return Recipe(
        name=model_name,
        model=ModelSection(name=model_name),
        augment=AugmentSection(flip=True, shift=0.1, rotate=10.0),
        optim=OptimSection(name="adamw", lr=1e-3, weight_decay=0.05),
        schedule=ScheduleSection(kind="cosine", warmup_epochs=1.0),
        train=TrainSection(epochs=30, batch_size=64),
    )


def apply_overrides(
    recipe: Recipe, overrides: dict[str, Any], *, where: str = "options", skip_none: bool = True
) -> Recipe:
    """Return a copy of ``recipe`` with dotted keys (``"train.epochs"``) replaced.

    ``None`` values are skipped (``skip_none``) so that unset command-line options leave the
    recipe alone; a file that writes ``null`` on purpose passes ``skip_none=False``.
    """
    raw = recipe.to_dict()
    for dotted, value in overrides.items():
        if value is None and skip_none:
            continue
        section, _, key = dotted.partition(".")
        if section not in raw or not isinstance(raw[section], dict) or key not in raw[section]:
            raise DataError(f"unknown key '{dotted}'", path=where)
        raw[section][key] = value
    out = recipe_from_dict(raw, where=where)
    out.name = recipe.name
    return out


_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str | float | int, *, where: str = "time budget") -> float:
    """Seconds in a duration such as ``90``, ``90s``, ``30m``, ``2h`` or ``1h30m``."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        seconds = float(text)
    else:
        s = str(text).strip().lower().replace(" ", "")
        parts = re.fullmatch(r"((?:\d+(?:\.\d+)?[smhd]?)+)", s)
        if not s or parts is None:
            raise DataError(f"cannot read duration {text!r}; use e.g. 90s, 30m, 2h", path=where)
        tokens = re.findall(r"(\d+(?:\.\d+)?)([smhd]?)", s)
        if len(tokens) > 1 and any(unit == "" for _, unit in tokens):
            raise DataError(f"cannot read duration {text!r}; use e.g. 90s, 30m, 2h", path=where)
        seconds = sum(float(n) * _UNITS[u or "s"] for n, u in tokens)
    if seconds <= 0:
        raise DataError(f"duration {text!r} must be positive", path=where)
    return seconds
