"""Size and cost of a model: parameter count and MFLOPs, plus input-size checking.

``ferlab models`` and ``docs/models_zoo.md`` report these figures. The cost is the number of
multiply-accumulates (MACs) of one forward pass on a single dummy sample at the model's
``input_size``, counted by PyTorch's own :class:`torch.utils.flop_counter.FlopCounterMode` (no
external package): it sees every convolution, linear layer and matrix product at the operator
level, so the ``q·kᵀ`` and ``attention·v`` products of self-attention layers count too, which
forward hooks on ``nn.Conv2d``/``nn.Linear`` modules would miss (they under-count Deep-Emotion
with self-attention five times). Following the convention of timm's and fvcore's tables, **one MAC
counts as one FLOP**, so "MFLOPs" here means millions of multiply-accumulates; double it for the
count of separate multiplications and additions. Batch norm, pooling, activations, softmax and
interpolation are not counted: they are a small fraction of the arithmetic, and leaving them out
keeps the figures comparable with published tables.

:func:`model_info` builds the model on PyTorch's ``meta`` device, where tensors have shapes but
no data, so measuring even DenseNet121 costs no arithmetic; a model whose forward pass the meta
device cannot run is measured on the CPU instead.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from ferlab.errors import FerlabError

__all__ = ["ModelInfo", "count_macs", "count_params", "model_info", "resolve_input_size"]


@dataclass(frozen=True)
class ModelInfo:
    """One row of the model table."""

    name: str
    params: int
    mflops: float
    """Millions of multiply-accumulates of one forward pass on one sample (1 MAC = 1 FLOP)."""
    input_size: tuple[int, int, int]
    source: str

    def as_dict(self) -> dict[str, Any]:
        row = asdict(self)
        row["input_size"] = list(self.input_size)
        return row


def count_params(model: nn.Module) -> int:
    """Number of parameters, trainable and frozen alike (a frozen face network counts too)."""
    return sum(p.numel() for p in model.parameters())


def count_macs(model: nn.Module, input_size: tuple[int, int, int]) -> int:
    """Multiply-accumulates of one forward pass on one ``input_size`` sample.

    Convolutions, linear layers and matrix products are counted. The model runs once in eval
    mode without gradients (batch norm in train mode cannot take a single sample at 1×1
    resolution) on the device of its parameters; its train/eval state is restored afterwards.
    """
    was_training = model.training
    model.eval()
    first = next(model.parameters(), None)
    device = first.device if first is not None else torch.device("cpu")
    counter = FlopCounterMode(display=False)
    try:
        with counter, torch.no_grad():
            model(torch.zeros(1, *input_size, device=device))
    finally:
        model.train(was_training)
    # FlopCounterMode counts a multiply and an add per MAC.
    return counter.get_total_flops() // 2


def model_info(name: str, **kwargs: Any) -> ModelInfo:
    """Build the registered model ``name`` (with ``kwargs``) and measure it."""
    from ferlab.models._registry import create_model, get_model_entry

    entry = get_model_entry(name)
    try:
        with torch.device("meta"):
            model = create_model(name, **kwargs)
            macs = count_macs(model, tuple(model.input_size))
    except (NotImplementedError, RuntimeError):
        # Some operator has no meta kernel: measure with real tensors.
        model = create_model(name, **kwargs)
        macs = count_macs(model, tuple(model.input_size))
    return ModelInfo(
        name=name,
        params=count_params(model),
        mflops=macs / 1e6,
        input_size=tuple(model.input_size),
        source=entry.source,
    )


def resolve_input_size(
    in_chans: int,
    input_size: int | tuple[int, ...] | None,
    default_hw: tuple[int, int],
    min_hw: int,
    model: str,
) -> tuple[int, int, int]:
    """Normalise a constructor's ``input_size`` to (C, H, W) and check it.

    Accepts ``None`` (gives ``(in_chans, *default_hw)``), a side length ``S`` (square, as the
    engine passes the crop size), ``(H, W)`` or ``(C, H, W)`` with ``C == in_chans``. ``min_hw``
    is the smallest side the architecture can take (below it a pooling stage would get an empty
    map); anything invalid raises :class:`~ferlab.errors.FerlabError` naming ``model``.
    """
    if in_chans < 1:
        raise FerlabError(f"{model}: in_chans must be at least 1, got {in_chans}")
    if input_size is None:
        return (in_chans, *default_hw)
    if isinstance(input_size, int):
        input_size = (input_size, input_size)
    size = tuple(int(v) for v in input_size)
    if len(size) == 2:
        size = (in_chans, *size)
    if len(size) != 3:
        raise FerlabError(
            f"{model}: input_size must be a side length, (height, width) or "
            f"(channels, height, width), got {input_size}"
        )
    if size[0] != in_chans:
        raise FerlabError(
            f"{model}: input_size {size} has {size[0]} channel(s) but in_chans is {in_chans}"
        )
    if min(size[1:]) < min_hw:
        raise FerlabError(
            f"{model}: input_size {size} is too small; height and width must be at least {min_hw}"
        )
    return size  # type: ignore[return-value]
