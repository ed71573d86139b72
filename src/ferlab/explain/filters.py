"""Layer visualisation: images that excite chosen filters of the last convolutional layer.

Jahromi & Fyshe (Fig. 5) visualise the last convolutional layer of their medium network "on a
noise image" after Yosinski et al.'s "Understanding Neural Networks Through Deep
Visualization" (2015) and the Keras blog post it inspired, and show the filters whose images
reach the highest activation ("images with higher loss value on selected layer are assumed to
be better looking"). Here, for each chosen filter k, a grey noise image x is optimised by
gradient ascent on the mean activation of channel k at the layer Grad-CAM uses
(:func:`~ferlab.explain.cam.target_layer`), with Yosinski et al.'s regularisers, which keep the
image natural rather than adversarial noise:

* **jitter**: the image is shifted by a random offset of up to ``jitter`` pixels (circularly)
  before every step, so the result must excite the filter wherever it sits;
* **L2 decay**: after every step the image is pulled towards grey, ``x ← (1 − decay) · x``;
* **blur**: every ``blur_every`` steps a 3×3 Gaussian blur removes high-frequency noise;
* pixels stay within the valid range (0–255 after the model's normalisation).

Steps are normalised-gradient ascent (the gradient divided by its root mean square, as in the
Keras post), so the same step size suits every model. All filters are optimised together as one
batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ferlab.errors import FerlabError
from ferlab.explain._subject import Subject, evaluating
from ferlab.explain.cam import capture, resolve_layer

__all__ = ["FilterImages", "filter_images"]


@dataclass(frozen=True)
class FilterImages:
    """Optimised images of some filters of one layer.

    Attributes:
        layer: the layer's name.
        filters: the channel index of each image.
        images: float32 K×h×w pixel images in [0, 1] at the network input's size.
        activation: float32 K, the mean activation each image reached (higher first when the
            filters were picked automatically).
    """

    layer: str
    filters: list[int]
    images: np.ndarray
    activation: np.ndarray


@torch.inference_mode(False)  # gradients even inside a caller's inference mode
def filter_images(
    model: Any,
    filters: Sequence[int] | None = None,
    *,
    count: int = 8,
    layer: str | None = None,
    steps: int = 128,
    step_size: float = 0.05,
    jitter: int = 2,
    decay: float = 0.01,
    blur_every: int = 4,
    seed: int = 0,
    progress: bool = False,
) -> FilterImages:
    """Optimise one noise image per filter to maximise its mean activation.

    Args:
        model: an :class:`~ferlab.inference.EmotionModel` or a zoo ``nn.Module``.
        filters: channel indices of the layer; default: the ``count`` filters that the starting
            noise excites most, returned in order of the activation their images reach
            (Jahromi & Fyshe show their "best filters"; optimising every filter of a 256-channel
            layer and keeping the best would cost 256 images per step).
        count: how many filters to pick when ``filters`` is not given.
        layer: the layer (default: the last convolutional block, as for Grad-CAM).
        steps, step_size: gradient-ascent steps and their size (in normalised input units).
        jitter, decay, blur_every: the regularisers (see the module docstring; 0 turns one off).
        seed: seed of the starting noise and the jitter.
        progress: show a progress bar on stderr.
    """
    from ferlab.data._progress import progress_bar

    if steps < 1 or count < 1 or jitter < 0 or blur_every < 0 or not 0 <= decay < 1:
        raise FerlabError(
            "filter images need steps >= 1, count >= 1, jitter >= 0, blur_every >= 0 and "
            f"0 <= decay < 1; got steps={steps}, count={count}, jitter={jitter}, "
            f"blur_every={blur_every}, decay={decay}"
        )
    subject = Subject(model)
    name, module = resolve_layer(subject, layer)
    channels = _channels(subject, module)
    gen = torch.Generator().manual_seed(seed)
    lo, hi = (t.to(subject.device) for t in subject.pixel_bounds())
    # Start from grey noise in pixel units, moved into the network's input space.
    noise = (0.5 + 0.1 * torch.randn(1, 1, *subject.input_hw, generator=gen)).clamp(0, 1)
    start = lo + noise.to(subject.device) * (hi - lo)
    if filters is None:
        chosen = _most_excited(subject, module, start, min(count, channels))
    else:
        chosen = [int(f) for f in filters]
        bad = [f for f in chosen if not 0 <= f < channels]
        if not chosen or bad:
            raise FerlabError(f"layer '{name}' has filters 0-{channels - 1}; got {list(filters)}")
    x = start.expand(len(chosen), -1, -1, -1).clone()
    centre = (lo + hi) / 2
    index = torch.tensor(chosen, device=subject.device)
    kernel = _gaussian3(subject.device)
    with evaluating(subject.network), progress_bar(f"filters of {name}", steps, progress) as bar:
        for step in range(steps):
            dx, dy = (int(v) for v in torch.randint(-jitter, jitter + 1, (2,), generator=gen))
            x = x.detach().roll((dy, dx), dims=(2, 3)).requires_grad_(True)
            with capture(module, grads=False) as store, torch.enable_grad():
                subject.network(_channels_in(x, subject.in_chans))
                act = _chosen_activation(store, index)
                grad = torch.autograd.grad(act.sum(), x)[0]
            grad = grad / grad.pow(2).mean(dim=(1, 2, 3), keepdim=True).sqrt().clamp(min=1e-8)
            with torch.no_grad():
                x = x + step_size * grad
                x = centre + (1 - decay) * (x - centre)
                if blur_every and (step + 1) % blur_every == 0:
                    x = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), kernel)
                x = torch.maximum(torch.minimum(x, hi), lo).roll((-dy, -dx), dims=(2, 3))
            bar(step + 1)
        with torch.no_grad(), capture(module, grads=False) as store:
            subject.network(_channels_in(x, subject.in_chans))
            final = _chosen_activation(store, index).float().cpu()
    order = final.argsort(descending=True) if filters is None else torch.arange(len(chosen))
    images = subject.to_pixels(x)[order].numpy().astype(np.float32)
    return FilterImages(
        layer=name,
        filters=[chosen[int(i)] for i in order],
        images=images,
        activation=final[order].numpy().astype(np.float32),
    )


def _most_excited(
    subject: Subject, module: torch.nn.Module, start: torch.Tensor, count: int
) -> list[int]:
    """The ``count`` filters whose mean activation on the starting noise is highest."""
    with torch.no_grad(), evaluating(subject.network), capture(module, grads=False) as store:
        subject.network(_channels_in(start, subject.in_chans))
    return store["act"][0].float().mean(dim=(1, 2)).argsort(descending=True)[:count].tolist()


def _channels(subject: Subject, module: torch.nn.Module) -> int:
    with torch.no_grad(), evaluating(subject.network), capture(module, grads=False) as store:
        subject.network(torch.zeros(1, subject.in_chans, *subject.input_hw, device=subject.device))
    return int(store["act"].shape[1])


def _channels_in(x: torch.Tensor, in_chans: int) -> torch.Tensor:
    return x if in_chans == 1 else x.expand(-1, in_chans, -1, -1)


def _chosen_activation(store: dict[str, torch.Tensor], index: torch.Tensor) -> torch.Tensor:
    """Mean activation of image i's own filter ``index[i]``, one value per image."""
    act = store["live"]
    picked = act[torch.arange(act.shape[0], device=act.device), index]
    return picked.mean(dim=(1, 2))


def _gaussian3(device: torch.device) -> torch.Tensor:
    k = torch.tensor([1.0, 2.0, 1.0], device=device)
    k = k[:, None] * k[None, :]
    return (k / k.sum()).reshape(1, 1, 3, 3)
